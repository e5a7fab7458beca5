package events

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"reflect"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/ecs-secrets-agent/ecs-secrets-agent/internal/awsfake"
)

// A value that must never reach a log, an error or a metric, seeded in a
// message body where a careless CloudTrail record could carry it.
const seededValue = "s3cr3t-VALUE-never-logged"

// memQueue is an in-memory Queue: Receive blocks until a message is
// queued, ctx ends or a failure is scripted.
type memQueue struct {
	mu       sync.Mutex
	msgs     []Message
	wake     chan struct{}
	fail     []error // the next receives' errors, in order
	failDel  []error
	receives []time.Time // when each Receive was called
	deleted  []string    // message ids
}

func newMemQueue() *memQueue { return &memQueue{wake: make(chan struct{})} }

func (q *memQueue) send(id, body string) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.msgs = append(q.msgs, Message{ID: id, ReceiptHandle: "r-" + id, Body: body})
	close(q.wake)
	q.wake = make(chan struct{})
}

func (q *memQueue) Receive(ctx context.Context) ([]Message, error) {
	q.mu.Lock()
	q.receives = append(q.receives, time.Now())
	q.mu.Unlock()
	for {
		q.mu.Lock()
		if len(q.fail) > 0 {
			err := q.fail[0]
			q.fail = q.fail[1:]
			q.mu.Unlock()
			return nil, err
		}
		if len(q.msgs) > 0 {
			n := min(len(q.msgs), MaxNumberOfMessages)
			out := append([]Message(nil), q.msgs[:n]...)
			q.mu.Unlock()
			return out, nil
		}
		wake := q.wake
		q.mu.Unlock()
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-wake:
		}
	}
}

func (q *memQueue) deletedIDs() []string {
	q.mu.Lock()
	defer q.mu.Unlock()
	return append([]string(nil), q.deleted...)
}

func (q *memQueue) receiveTimes() []time.Time {
	q.mu.Lock()
	defer q.mu.Unlock()
	return append([]time.Time(nil), q.receives...)
}

func (q *memQueue) Delete(_ context.Context, msgs []Message) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.failDel) > 0 {
		err := q.failDel[0]
		q.failDel = q.failDel[1:]
		return err // the messages stay, as SQS shows them again
	}
	for _, m := range msgs {
		q.deleted = append(q.deleted, m.ID)
		for i, k := range q.msgs {
			if k.ReceiptHandle == m.ReceiptHandle {
				q.msgs = append(q.msgs[:i], q.msgs[i+1:]...)
				break
			}
		}
	}
	return nil
}

// notices records Notify calls.
type notices struct {
	mu  sync.Mutex
	got []string
}

func (n *notices) notify(region, id string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.got = append(n.got, region+" "+id)
}

func (n *notices) get() []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return append([]string(nil), n.got...)
}

// syncBuffer is a log destination safe for the consumer's goroutine.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

type harness struct {
	q    Queue
	n    *notices
	reg  *prometheus.Registry
	logs *syncBuffer
	c    *Consumer
}

func newHarness(t *testing.T, q Queue, rnd func() float64) *harness {
	t.Helper()
	h := &harness{q: q, n: &notices{}, reg: prometheus.NewRegistry(), logs: &syncBuffer{}}
	var err error
	h.c, err = New(Options{Queue: q, Notify: h.n.notify, Registerer: h.reg, Rand: rnd,
		Log: slog.New(slog.NewTextHandler(h.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// run starts the consumer; the returned stop cancels it and waits for Run
// to return.
func (h *harness) run() (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { h.c.Run(ctx); close(done) }()
	return func() { cancel(); <-done }
}

func (h *harness) metrics(t *testing.T, want string) {
	t.Helper()
	const head = `# HELP ecs_secrets_agent_events_errors_total Failed SQS calls of the change event consumer, by reason (receive, delete).
# TYPE ecs_secrets_agent_events_errors_total counter
# HELP ecs_secrets_agent_events_received_total Change event messages taken from the SQS queue, by kind (parameter, secret, ignored, malformed); every one is deleted.
# TYPE ecs_secrets_agent_events_received_total counter
`
	if err := testutil.GatherAndCompare(h.reg, strings.NewReader(head+want)); err != nil {
		t.Fatal(err)
	}
}

func TestConsumerNotifiesAndDeletes(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		q := newMemQueue()
		h := newHarness(t, q, nil)
		stop := h.run()
		put := readEvent(t, "put-secret-value.json")
		q.send("m1", readEvent(t, "parameter-update.json"))
		q.send("m2", strings.Replace(put, "HIDDEN_DUE_TO_SECURITY_REASONS", seededValue, 1))
		q.send("m3", `{"detail-type":"Parameter Store Change","source":"aws.ssm","region":"eu-west-1","detail":{"operation":"Update","password":"`+seededValue+`"}}`)
		q.send("m4", apiCall("GetSecretValue", `{"secretId":"prod/api"}`, `{"secretString":"`+seededValue+`"}`))
		q.send("m5", seededValue)
		synctest.Wait()
		stop()
		want := []string{"eu-west-1 /prod/db/password", "us-east-1 prod/api", "us-east-1 " + secretARN}
		if got := h.n.get(); !reflect.DeepEqual(got, want) {
			t.Fatalf("notified %q, want %q", got, want)
		}
		if !reflect.DeepEqual(q.deletedIDs(), []string{"m1", "m2", "m3", "m4", "m5"}) {
			t.Fatalf("deleted %q", q.deletedIDs())
		}
		h.metrics(t, `ecs_secrets_agent_events_errors_total{reason="delete"} 0
ecs_secrets_agent_events_errors_total{reason="receive"} 0
ecs_secrets_agent_events_received_total{kind="ignored"} 1
ecs_secrets_agent_events_received_total{kind="malformed"} 2
ecs_secrets_agent_events_received_total{kind="parameter"} 1
ecs_secrets_agent_events_received_total{kind="secret"} 1
`)
		logs := h.logs.String()
		for _, want := range []string{
			`level=WARN msg="deleting a malformed event message" message_id=m3 error="malformed event \"Parameter Store Change\": no parameter or secret name"`,
			`level=WARN msg="deleting a malformed event message" message_id=m5 error="malformed event: not a JSON object"`,
			`level=DEBUG msg="deleting an event that changes nothing tracked" message_id=m4`,
		} {
			if !strings.Contains(logs, want) {
				t.Errorf("logs lack %s:\n%s", want, logs)
			}
		}
		if strings.Contains(logs, seededValue) || strings.Contains(logs, "HIDDEN") {
			t.Fatalf("a message body reached the log:\n%s", logs)
		}
	})
}

// Failed receives back off 1 s, 2 s, 4 s … up to a minute, with one log
// line when the failures start and one when they end.
func TestConsumerBacksOffAndRecovers(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		q := newMemQueue()
		for range 9 {
			q.fail = append(q.fail, &APIError{Op: "ReceiveMessage", Status: 500, Code: "InternalError"})
		}
		h := newHarness(t, q, nil)
		start := time.Now()
		stop := h.run()
		time.Sleep(10 * time.Minute) // fake time: the backoff runs out
		q.send("m1", readEvent(t, "rotation-succeeded.json"))
		synctest.Wait()
		stop()
		var gaps []time.Duration
		receives := q.receiveTimes()
		for i, at := range receives {
			if i == 0 {
				gaps = append(gaps, at.Sub(start))
			} else {
				gaps = append(gaps, at.Sub(receives[i-1]))
			}
		}
		s := time.Second
		want := []time.Duration{0, s, 2 * s, 4 * s, 8 * s, 16 * s, 32 * s, 60 * s, 60 * s, 60 * s, 10*time.Minute - 243*s}
		if !reflect.DeepEqual(gaps, want) {
			t.Fatalf("receives at intervals %v, want %v", gaps, want)
		}
		if got := h.n.get(); !reflect.DeepEqual(got, []string{"us-east-1 " + secretARN}) {
			t.Fatalf("notified %q", got)
		}
		h.metrics(t, `ecs_secrets_agent_events_errors_total{reason="delete"} 0
ecs_secrets_agent_events_errors_total{reason="receive"} 9
ecs_secrets_agent_events_received_total{kind="ignored"} 0
ecs_secrets_agent_events_received_total{kind="malformed"} 0
ecs_secrets_agent_events_received_total{kind="parameter"} 0
ecs_secrets_agent_events_received_total{kind="secret"} 1
`)
		logs := h.logs.String()
		if n := strings.Count(logs, `level=WARN msg="events queue failing"`); n != 1 {
			t.Errorf("%d warnings, want 1:\n%s", n, logs)
		}
		if n := strings.Count(logs, `level=DEBUG msg="events queue failing"`); n != 8 {
			t.Errorf("%d debug lines, want 8:\n%s", n, logs)
		}
		wantWarn := `level=WARN msg="events queue failing" reason=receive error="sqs ReceiveMessage: HTTP 500 InternalError" retry_in=1s`
		wantInfo := `level=INFO msg="events queue recovered" failing_for=10m0s`
		if !strings.Contains(logs, wantWarn) || !strings.Contains(logs, wantInfo) {
			t.Errorf("logs lack %s or %s:\n%s", wantWarn, wantInfo, logs)
		}
	})
}

// A failed delete backs off too; the messages come back and are told and
// deleted again (at least once, never lost).
func TestConsumerDeleteFails(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		q := newMemQueue()
		q.failDel = []error{&BatchError{Failed: 1, Code: "ReceiptHandleIsInvalid"}}
		h := newHarness(t, q, func() float64 { return 0.5 })
		stop := h.run()
		q.send("m1", readEvent(t, "parameter-update.json"))
		synctest.Wait()
		if got := h.n.get(); len(got) != 1 || len(q.deletedIDs()) != 0 {
			t.Fatalf("before the retry: notified %q, deleted %q", got, q.deletedIDs())
		}
		time.Sleep(900 * time.Millisecond) // 1 s jittered down by a tenth (Rand 0.5 of a fifth)
		synctest.Wait()
		if got := h.n.get(); len(got) != 2 || !reflect.DeepEqual(q.deletedIDs(), []string{"m1"}) {
			t.Fatalf("after the retry: notified %q, deleted %q", got, q.deletedIDs())
		}
		h.metrics(t, `ecs_secrets_agent_events_errors_total{reason="delete"} 1
ecs_secrets_agent_events_errors_total{reason="receive"} 0
ecs_secrets_agent_events_received_total{kind="ignored"} 0
ecs_secrets_agent_events_received_total{kind="malformed"} 0
ecs_secrets_agent_events_received_total{kind="parameter"} 2
ecs_secrets_agent_events_received_total{kind="secret"} 0
`)
		stop()
		if want := `retry_in=900ms`; !strings.Contains(h.logs.String(), want) {
			t.Fatalf("logs lack %s:\n%s", want, h.logs.String())
		}
	})
}

// Run returns when ctx ends, whether it is waiting on a receive or backing
// off.
func TestConsumerStopsOnContext(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		q := newMemQueue()
		stop := newHarness(t, q, nil).run()
		synctest.Wait() // held in Receive
		stop()
	})
	synctest.Test(t, func(t *testing.T) {
		q := newMemQueue()
		q.fail = []error{errors.New("down")}
		h := newHarness(t, q, nil)
		stop := h.run()
		synctest.Wait() // in its first backoff
		stop()
		if len(q.receiveTimes()) != 1 || strings.Contains(h.logs.String(), "recovered") {
			t.Fatalf("receives %d; logs:\n%s", len(q.receiveTimes()), h.logs.String())
		}
	})
}

func TestNewConsumer(t *testing.T) {
	q, log := newMemQueue(), slog.New(slog.DiscardHandler)
	if _, err := New(Options{Queue: q, Log: log}); err == nil || err.Error() != "events: Queue, Notify and Log are required" {
		t.Fatalf("no Notify: %v", err)
	}
	reg := prometheus.NewRegistry()
	if _, err := New(Options{Queue: q, Log: log, Notify: func(string, string) {}, Registerer: reg}); err != nil {
		t.Fatal(err)
	}
	_, err := New(Options{Queue: q, Log: log, Notify: func(string, string) {}, Registerer: reg})
	if err == nil || !errors.As(err, new(prometheus.AlreadyRegisteredError)) {
		t.Fatalf("second registration: %v", err)
	}
	if probs, err := testutil.GatherAndLint(reg); err != nil || len(probs) != 0 {
		t.Fatalf("promlint: %v %v", probs, err)
	}
}

// The consumer with the real SQS client against the wire-level fake:
// events reach Notify, every message is deleted, a failing receive is
// retried, and cancelling ends a held long poll at once.
func TestConsumerAgainstFake(t *testing.T) {
	f, c, calls := fakeSQS(t)
	h := newHarness(t, c, nil)
	f.SendMessage(c.QueueURL, readEvent(t, "parameter-update.json"))
	f.SendMessage(c.QueueURL, "not an event "+seededValue)
	failed := false
	f.SetFault(func(op string) *awsfake.APIError {
		if op == "ReceiveMessage" && !failed {
			failed = true
			return &awsfake.APIError{Status: 500, Code: "InternalError", Message: "try again"}
		}
		return nil
	})
	stop := h.run()
	waitFor(t, "both messages deleted", func() bool { return f.QueueLength(c.QueueURL) == 0 })
	f.SendMessage(c.QueueURL, readEvent(t, "put-secret-value.json"))
	waitFor(t, "the third message deleted", func() bool { return f.QueueLength(c.QueueURL) == 0 && len(h.n.get()) == 3 })
	waitFor(t, "the next long poll", func() bool { return f.Calls("ReceiveMessage") == 4 })
	stop() // returns although the fake holds the receive for 20 s
	want := []string{"eu-west-1 /prod/db/password", "us-east-1 prod/api", "us-east-1 " + secretARN}
	if got := h.n.get(); !reflect.DeepEqual(got, want) {
		t.Fatalf("notified %q, want %q", got, want)
	}
	wantCalls := []string{
		"SQS ReceiveMessage server_error", "SQS ReceiveMessage success", "SQS DeleteMessageBatch success",
		"SQS ReceiveMessage success", "SQS DeleteMessageBatch success", "SQS ReceiveMessage network_error",
	}
	if got := calls.get(); !reflect.DeepEqual(got, wantCalls) {
		t.Fatalf("calls %q, want %q", got, wantCalls)
	}
	if f.SignatureFailures() != 0 || strings.Contains(h.logs.String(), seededValue) {
		t.Fatalf("signature failures %d; logs:\n%s", f.SignatureFailures(), h.logs.String())
	}
}
