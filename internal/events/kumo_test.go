package events

// The SQS client against kumo, an emulator nobody here wrote, so that the
// wire-level fake's idea of SQS's JSON protocol is not the only one tested.
// kumo checks no signature; awsfake does (sqs_test.go).

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/sivchari/kumo"
)

// kumoCall makes one unsigned SQS JSON call, for seeding.
func kumoCall(t *testing.T, url, op string, in, out any) {
	t.Helper()
	b, _ := json.Marshal(in)
	req, _ := http.NewRequest(http.MethodPost, url+"/", bytes.NewReader(b))
	req.Header.Set("Content-Type", jsonContentType)
	req.Header.Set("X-Amz-Target", "AmazonSQS."+op)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("kumo %s: HTTP %d", op, resp.StatusCode)
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		t.Fatalf("kumo %s: %v", op, err)
	}
}

func TestSQSAgainstKumo(t *testing.T) {
	srv := kumo.NewServer()
	t.Cleanup(srv.Close)
	var q struct{ QueueUrl string }
	kumoCall(t, srv.URL, "CreateQueue", map[string]any{"QueueName": "events"}, &q)
	if q.QueueUrl == "" {
		t.Fatal("kumo gave no queue URL")
	}
	body := readEvent(t, "put-secret-value.json")
	for range 3 {
		var sent struct{ MessageId string }
		kumoCall(t, srv.URL, "SendMessage", map[string]any{"QueueUrl": q.QueueUrl, "MessageBody": body}, &sent)
	}
	// Test credentials for an emulator that checks none.
	cfg := aws.Config{Region: region, Credentials: credentials.NewStaticCredentialsProvider("test", "test", "")}
	c, err := NewSQS(q.QueueUrl, srv.URL, cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	msgs, err := c.Receive(ctx)
	if err != nil || len(msgs) != 3 {
		t.Fatalf("receive: %d messages, %v", len(msgs), err)
	}
	for _, m := range msgs {
		if m.Body != body || m.ID == "" || m.ReceiptHandle == "" {
			t.Fatalf("message %+v", m)
		}
	}
	if err := c.Delete(ctx, msgs); err != nil {
		t.Fatal(err)
	}
	var attrs struct{ Attributes map[string]string }
	kumoCall(t, srv.URL, "GetQueueAttributes", map[string]any{"QueueUrl": q.QueueUrl, "AttributeNames": []string{"All"}}, &attrs)
	if n := attrs.Attributes["ApproximateNumberOfMessages"] + "/" + attrs.Attributes["ApproximateNumberOfMessagesNotVisible"]; n != "0/0" {
		t.Fatalf("left in kumo's queue (visible/in flight): %s", n)
	}
	var gone *APIError
	bad := *c
	bad.QueueURL = q.QueueUrl + "-gone"
	// kumo answers with the query protocol's code, where SQS's JSON
	// protocol has "com.amazonaws.sqs#QueueDoesNotExist" (and the query
	// code in the x-amzn-query-error header).
	if _, err := bad.Receive(ctx); !errors.As(err, &gone) || gone.Status != 400 || gone.Code != "AWS.SimpleQueueService.NonExistentQueue" {
		t.Fatalf("missing queue: %#v", err)
	}
}
