package taskmeta

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
	"testing/synctest"
	"time"
)

func TestGet(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v4/abc/task" {
			http.NotFound(w, r)
			return
		}
		_, _ = w.Write([]byte(`{"Cluster":"arn:aws:ecs:eu-west-1:111122223333:cluster/prod","TaskARN":"arn:aws:ecs:eu-west-1:111122223333:task/prod/0123","ServiceName":"web","Family":"web"}`))
	}))
	defer srv.Close()
	env := map[string]string{EnvURI: srv.URL + "/v4/abc"}
	task, err := Get(context.Background(), func(k string) string { return env[k] }, srv.Client())
	if err != nil {
		t.Fatal(err)
	}
	if task.ServiceName != "web" || task.Cluster != "arn:aws:ecs:eu-west-1:111122223333:cluster/prod" {
		t.Errorf("task = %+v", task)
	}
	if r, err := task.Region(); r != "eu-west-1" || err != nil {
		t.Errorf("Region() = %q, %v", r, err)
	}

	env[EnvURI] = srv.URL + "/elsewhere"
	if _, err := Get(context.Background(), func(k string) string { return env[k] }, srv.Client()); err == nil {
		t.Error("no error for a 404")
	}
	if _, err := Get(context.Background(), func(string) string { return "" }, srv.Client()); !errors.Is(err, ErrNotInTask) {
		t.Errorf("error = %v, want ErrNotInTask", err)
	}
	if _, err := (Task{TaskARN: "task/abc"}).Region(); err == nil || err.Error() != `task metadata: TaskARN "task/abc" is not an ARN` {
		t.Errorf("Region() error = %v", err)
	}
}

// blockingTransport answers nothing until the request is cancelled.
type blockingTransport struct{}

func (blockingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	<-r.Context().Done()
	return nil, r.Context().Err()
}

// TestGetHasADeadline protects start-up and redeploys from a metadata
// endpoint that never answers: a client without a timeout waited forever.
func TestGetHasADeadline(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		env := map[string]string{EnvURI: "http://169.254.170.2/v4/abc"}
		start := time.Now()
		_, err := Get(context.Background(), func(k string) string { return env[k] }, &http.Client{Transport: blockingTransport{}})
		if want := "task metadata: no answer from http://169.254.170.2/v4/abc/task within 5s"; err == nil || err.Error() != want {
			t.Fatalf("error %v, want %s", err, want)
		}
		if d := time.Since(start); d != Timeout {
			t.Errorf("gave up after %s (fake time), want %s", d, Timeout)
		}
	})
}
