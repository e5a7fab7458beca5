package events

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"

	"github.com/ecs-secrets-agent/ecs-secrets-agent/internal/awsfake"
	"github.com/ecs-secrets-agent/ecs-secrets-agent/internal/fetch"
)

const region = "us-east-1"

// apiCalls records what an APIObserver is told.
type apiCalls struct {
	mu    sync.Mutex
	calls []string
}

func (a *apiCalls) observe(service, op, outcome string, _ time.Duration) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.calls = append(a.calls, service+" "+op+" "+outcome)
}

func (a *apiCalls) get() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]string(nil), a.calls...)
}

// fakeSQS starts the wire-level fake with one queue and returns a client
// of it built as the agent builds it: the default credential chain from the
// ECS container credentials endpoint, no static keys.
func fakeSQS(t *testing.T) (*awsfake.Fake, *SQS, *apiCalls) {
	t.Helper()
	f := awsfake.New()
	t.Cleanup(f.Close)
	f.SetenvIsolated(t.Setenv, region, t.TempDir())
	calls := &apiCalls{}
	cfg, err := fetch.LoadAWSConfig(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	c, err := NewSQS(f.CreateQueue("events"), "", cfg, calls.observe)
	if err != nil {
		t.Fatal(err)
	}
	return f, c, calls
}

func TestSQSReceiveAndDelete(t *testing.T) {
	f, c, calls := fakeSQS(t)
	ctx := context.Background()
	want := map[string]string{} // message id → body
	for i := range 12 {
		body := fmt.Sprintf(`{"n":%d,"s":"\u00e9\"<>&"}`, i)
		want[f.SendMessage(c.QueueURL, body)] = body
	}
	var got []Message
	for range 2 {
		msgs, err := c.Receive(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(msgs) != map[bool]int{true: 10, false: 2}[got == nil] {
			t.Fatalf("received %d messages", len(msgs))
		}
		if err := c.Delete(ctx, msgs); err != nil {
			t.Fatal(err)
		}
		got = append(got, msgs...)
	}
	for _, m := range got {
		if want[m.ID] != m.Body || m.ReceiptHandle == "" {
			t.Errorf("message %s: body %q, want %q; receipt %q", m.ID, m.Body, want[m.ID], m.ReceiptHandle)
		}
		delete(want, m.ID)
	}
	if len(want) != 0 || f.QueueLength(c.QueueURL) != 0 {
		t.Fatalf("not received: %v; left in the queue: %d", want, f.QueueLength(c.QueueURL))
	}
	if n := f.SignatureFailures(); n != 0 {
		t.Fatalf("%d requests failed the SigV4 check", n)
	}
	wantCalls := []string{"SQS ReceiveMessage success", "SQS DeleteMessageBatch success", "SQS ReceiveMessage success", "SQS DeleteMessageBatch success"}
	if !reflect.DeepEqual(calls.get(), wantCalls) {
		t.Fatalf("observed %q, want %q", calls.get(), wantCalls)
	}
	// Nothing to delete is no call.
	if err := c.Delete(ctx, nil); err != nil || f.Calls("DeleteMessageBatch") != 2 {
		t.Fatalf("Delete(nil) = %v, %d calls", err, f.Calls("DeleteMessageBatch"))
	}
}

// A receive on an empty queue is held (long polling) and answered when a
// message arrives.
func TestSQSLongPoll(t *testing.T) {
	f, c, _ := fakeSQS(t)
	f.SetVisibility(0) // a received message is at once visible again
	type result struct {
		msgs []Message
		err  error
	}
	done := make(chan result, 1)
	go func() {
		msgs, err := c.Receive(context.Background())
		done <- result{msgs, err}
	}()
	waitFor(t, "the receive to reach the fake", func() bool { return f.Calls("ReceiveMessage") == 1 })
	select {
	case r := <-done:
		t.Fatalf("receive answered before any message: %+v", r)
	default:
	}
	id := f.SendMessage(c.QueueURL, "late")
	r := <-done
	if r.err != nil || len(r.msgs) != 1 || r.msgs[0].ID != id || r.msgs[0].Body != "late" {
		t.Fatalf("receive = %+v", r)
	}
	// Not deleted, it comes back once its visibility timeout is over.
	msgs, err := c.Receive(context.Background())
	if err != nil || len(msgs) != 1 || msgs[0].ID != id || msgs[0].ReceiptHandle == r.msgs[0].ReceiptHandle {
		t.Fatalf("second receive = %+v, %v", msgs, err)
	}
}

// The fake re-signs every request with the credentials it handed out: a
// client with other credentials, or signing for another service, is
// refused.
func TestSQSSigning(t *testing.T) {
	f, c, _ := fakeSQS(t)
	ctx := context.Background()
	f.SendMessage(c.QueueURL, "x")

	wrongSecret := *c
	wrongSecret.Credentials = credentials.NewStaticCredentialsProvider(f.AccessKeyID, "not-the-secret", f.SessionToken)
	_, err := wrongSecret.Receive(ctx)
	var ae *APIError
	if !errors.As(err, &ae) || ae.Status != 403 || ae.Code != "InvalidSignatureException" {
		t.Fatalf("wrong secret key: %v", err)
	}
	otherKey := *c
	otherKey.Credentials = credentials.NewStaticCredentialsProvider("ASIAOTHER", f.SecretAccessKey, f.SessionToken)
	if _, err := otherKey.Receive(ctx); !errors.As(err, &ae) || ae.Code != "UnrecognizedClientException" {
		t.Fatalf("other key: %v", err)
	}
	if n := f.SignatureFailures(); n != 2 {
		t.Fatalf("%d signature failures, want 2", n)
	}
	if f.QueueLength(c.QueueURL) != 1 {
		t.Fatal("a refused receive took the message")
	}
	// The real client passes.
	if msgs, err := c.Receive(ctx); err != nil || len(msgs) != 1 {
		t.Fatalf("receive = %v, %v", msgs, err)
	}
}

func TestSQSErrors(t *testing.T) {
	f, c, calls := fakeSQS(t)
	ctx := context.Background()

	gone := *c
	gone.QueueURL = f.URL + "/" + awsfake.Account + "/gone"
	_, err := gone.Receive(ctx)
	if want := "sqs ReceiveMessage: HTTP 400 QueueDoesNotExist: The specified queue does not exist."; err == nil || err.Error() != want {
		t.Fatalf("missing queue: %v, want %q", err, want)
	}

	f.SendMessage(c.QueueURL, "x")
	msgs, err := c.Receive(ctx)
	if err != nil {
		t.Fatal(err)
	}
	stale := []Message{{ID: msgs[0].ID, ReceiptHandle: "stale"}, msgs[0]}
	err = c.Delete(ctx, stale)
	var be *BatchError
	if !errors.As(err, &be) || *be != (BatchError{Failed: 1, Code: "ReceiptHandleIsInvalid"}) ||
		err.Error() != "sqs DeleteMessageBatch: 1 entries failed (ReceiptHandleIsInvalid)" {
		t.Fatalf("stale receipt: %#v", err)
	}
	if f.QueueLength(c.QueueURL) != 0 {
		t.Fatal("the entry with the good receipt was not deleted")
	}

	for _, fault := range []*awsfake.APIError{
		{Status: 400, Code: "RequestThrottled", Message: "slow down"},
		{Status: 500, Code: "InternalError", Message: "boom"},
		{Status: 403, Code: "AccessDenied", Message: "no"},
	} {
		f.SetFault(func(string) *awsfake.APIError { return fault })
		if _, err := c.Receive(ctx); err == nil || err.Error() != fmt.Sprintf("sqs ReceiveMessage: HTTP %d %s: %s", fault.Status, fault.Code, fault.Message) {
			t.Fatalf("fault %v: %v", fault, err)
		}
	}
	f.SetFault(nil)
	f.Close()
	if _, err := c.Receive(ctx); err == nil || errors.As(err, new(*APIError)) {
		t.Fatalf("closed endpoint: %v", err)
	}
	want := []string{
		"SQS ReceiveMessage client_error", "SQS ReceiveMessage success", "SQS DeleteMessageBatch success",
		"SQS ReceiveMessage throttled", "SQS ReceiveMessage server_error", "SQS ReceiveMessage client_error",
		"SQS ReceiveMessage network_error",
	}
	if !reflect.DeepEqual(calls.get(), want) {
		t.Fatalf("observed %q, want %q", calls.get(), want)
	}
}

func TestNewSQS(t *testing.T) {
	cfg := aws.Config{Region: "eu-central-1", Credentials: credentials.NewStaticCredentialsProvider("k", "s", "")}
	tests := []struct {
		url, endpoint        string
		wantEndpoint, region string
	}{
		{"https://sqs.us-east-1.amazonaws.com/111122223333/events", "", "https://sqs.us-east-1.amazonaws.com/", "us-east-1"},
		{"https://sqs.cn-north-1.amazonaws.com.cn/111122223333/events", "", "https://sqs.cn-north-1.amazonaws.com.cn/", "cn-north-1"},
		{"https://eu-west-1.queue.amazonaws.com/111122223333/events", "", "https://eu-west-1.queue.amazonaws.com/", "eu-west-1"},
		{"https://vpce-0a1b-c2d3.sqs.ap-south-1.vpce.amazonaws.com/111122223333/events.fifo", "", "https://vpce-0a1b-c2d3.sqs.ap-south-1.vpce.amazonaws.com/", "ap-south-1"},
		{"https://sqs.us-east-1.amazonaws.com/111122223333/events", "http://127.0.0.1:4566/", "http://127.0.0.1:4566/", "us-east-1"},
		{"http://127.0.0.1:4566/000000000000/events", "", "http://127.0.0.1:4566/", "eu-central-1"},
		{"https://queue.amazonaws.com/111122223333/events", "", "https://queue.amazonaws.com/", "eu-central-1"},
	}
	for _, tc := range tests {
		t.Run(tc.url, func(t *testing.T) {
			c, err := NewSQS(tc.url, tc.endpoint, cfg, nil)
			if err != nil {
				t.Fatal(err)
			}
			if c.Endpoint != tc.wantEndpoint || c.Region != tc.region || c.QueueURL != tc.url {
				t.Fatalf("endpoint %q region %q queue %q", c.Endpoint, c.Region, c.QueueURL)
			}
		})
	}
	for _, bad := range []string{
		"", "events", "sqs.us-east-1.amazonaws.com/111122223333/events", "ftp://sqs.us-east-1.amazonaws.com/1/e",
		"https://sqs.us-east-1.amazonaws.com/111122223333", "https://sqs.us-east-1.amazonaws.com/1/e/f",
		"https://user:pw@sqs.us-east-1.amazonaws.com/1/e", "https://sqs.us-east-1.amazonaws.com/1/e?x=1", "https:///1/e",
	} {
		_, err := NewSQS(bad, "", cfg, nil)
		if want := fmt.Sprintf("events queue %q is not an SQS queue URL (https://sqs.REGION.amazonaws.com/ACCOUNT/NAME)", bad); err == nil || err.Error() != want {
			t.Errorf("NewSQS(%q) = %v, want %q", bad, err, want)
		}
	}
	if _, err := NewSQS("http://127.0.0.1:1/1/e", "", aws.Config{Credentials: cfg.Credentials}, nil); err == nil ||
		err.Error() != `events queue "http://127.0.0.1:1/1/e": no region in its host name, and none configured (AWS_REGION)` {
		t.Errorf("no region: %v", err)
	}
}

// waitFor polls cond until it holds, failing the test after 10 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.After(10 * time.Second)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-deadline:
			t.Fatalf("timed out waiting for %s", what)
		case <-tick.C:
		}
	}
}
