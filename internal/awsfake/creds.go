package awsfake

import (
	"encoding/json"
	"net/http"
	"time"
)

const roleName = "ecs-task-role"

// serveCredentials answers like the ECS agent's task credentials endpoint
// (AWS_CONTAINER_CREDENTIALS_FULL_URI), which the SDK's endpointcreds
// provider calls with the token in the Authorization header.
func (f *Fake) serveCredentials(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	f.credRequests++
	f.mu.Unlock()

	fail := func(status int, code, msg string) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_ = json.NewEncoder(w).Encode(map[string]string{"code": code, "message": msg})
	}
	if r.Method != http.MethodGet || r.URL.Path != f.credPath {
		fail(http.StatusNotFound, "NotFound", "no credentials at "+r.URL.Path)
		return
	}
	if r.Header.Get("Authorization") != f.Token {
		fail(http.StatusUnauthorized, "AccessDenied", "invalid or missing authorization token")
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]string{
		"RoleArn":         "arn:aws:iam::" + Account + ":role/" + roleName,
		"AccessKeyId":     f.AccessKeyID,
		"SecretAccessKey": f.SecretAccessKey,
		"Token":           f.SessionToken,
		"Expiration":      time.Now().Add(time.Hour).UTC().Format(time.RFC3339),
	})
}
