package awsfake

import (
	"crypto/rand"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"
)

// contentType is what awsJson1_1 uses both ways
// (smithy-go transport/http/protocol/awsjson).
const contentType = "application/x-amz-json-1.1"

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status = http.StatusInternalServerError
		b = []byte(`{"__type":"InternalServerError","message":"awsfake: encode response"}`)
	}
	w.Header().Set("Content-Type", contentType)
	w.Header().Set("X-Amzn-RequestId", newUUID())
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

// writeError writes the awsJson error shape. The SDK reads the code from
// "__type" and accepts "message" or "Message" for the text.
func writeError(w http.ResponseWriter, e *APIError) {
	status := e.Status
	if status == 0 {
		status = http.StatusBadRequest
	}
	body := map[string]string{"__type": e.Code}
	if e.Message != "" {
		body["message"] = e.Message
	}
	writeJSON(w, status, body)
}

func decode(body []byte, v any) *APIError {
	if err := json.Unmarshal(body, v); err != nil {
		return &APIError{Status: 400, Code: "SerializationException", Message: err.Error()}
	}
	return nil
}

func validationError(format string, args ...any) *APIError {
	return &APIError{Status: 400, Code: "ValidationException", Message: fmt.Sprintf(format, args...)}
}

// accessDenied mimics the IAM message for the task role.
func accessDenied(action, resource string) *APIError {
	return &APIError{Status: 400, Code: "AccessDeniedException", Message: fmt.Sprintf(
		"User: arn:aws:sts::%s:assumed-role/%s/fake-task is not authorized to perform: %s on resource: %s because no identity-based policy allows the %s action",
		Account, roleName, action, resource, action)}
}

// epoch is the awsJson timestamp encoding: seconds since the epoch as a
// JSON number with millisecond precision (smithy "epoch-seconds").
func epoch(t time.Time) float64 {
	return float64(t.UnixMilli()) / 1000
}

const (
	alnum       = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
	upperDigits = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
)

func randString(alphabet string, n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	var s strings.Builder
	for _, c := range b {
		s.WriteByte(alphabet[int(c)%len(alphabet)])
	}
	return s.String()
}

func newUUID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
}
