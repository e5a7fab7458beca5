package feed

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/ecs-secrets-agent/ecs-secrets-agent/internal/fetch"
	"github.com/ecs-secrets-agent/ecs-secrets-agent/internal/secret"
)

// A ref that drops out of the request (another ref, sorting before it,
// takes its place under the 1,000-ref limit) must not stay covered by the
// feed's last word on it: answers that no longer name it say nothing of
// it, so its rotation would go unseen, neither told nor polled, for as
// long as the feed answers.
func TestClientRefLeftOutOfTheRequestIsNotCoveredByOldAnswers(t *testing.T) {
	const interval = 10 * time.Second
	now := time.Unix(1700000000, 0)
	c, err := NewClient(ClientOptions{URL: "http://feed:1", Region: "eu-west-1", Interval: interval, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	refs, versions := map[string]string{}, map[string]string{}
	for i := 1; i <= MaxRefsPerRequest; i++ {
		name := fmt.Sprintf("S%04d", i)
		refs[name], versions[name] = fmt.Sprintf("/p/%04d", i), "1"
	}
	answer := func() {
		c.mu.Lock()
		_, sent := c.request()
		c.mu.Unlock()
		resp := &Response{Refs: map[string]RefState{}, Changed: []string{}, Interval: "5s"}
		for raw := range sent {
			resp.Refs[raw] = RefState{Version: "1"}
		}
		c.answered(resp, sent)
	}
	reqs, have := held(t, refs, versions)
	c.Hold(0, reqs, have)
	answer()
	last := reqs[len(reqs)-1] // /p/1000
	if !c.Covered(last, "1") {
		t.Fatalf("%s not covered after an answer that named it", last.Ref.Raw)
	}
	// A reload adds /p/0000: /p/1000 is now polled directly.
	refs["S0000"], versions["S0000"] = "/p/0000", "1"
	reqs, have = held(t, refs, versions)
	c.Hold(0, reqs, have)
	for range 4 {
		now = now.Add(5 * time.Second)
		answer()
	}
	if c.Covered(last, "1") {
		t.Errorf("%s covered 20s after the last answer that named it (interval %s)", last.Ref.Raw, interval)
	}
}

// alternate sends each request to the next of its handlers in turn, as a
// load balancer does per request in front of two watchers.
type alternate struct {
	mu sync.Mutex
	n  int
	hs []http.Handler
}

func (a *alternate) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	a.mu.Lock()
	h := a.hs[a.n%len(a.hs)]
	a.n++
	a.mu.Unlock()
	h.ServeHTTP(w, r)
}

// Two watchers behind one address, one of which has not polled a rotation
// yet, answer in turn "4" and "3". The agent must fetch the value once for
// the change, and not once per pair of answers until the late watcher
// polls: that is a value fetch (a KMS decrypt) every two seconds per task,
// the fleet-wide storm the feed exists to prevent.
func TestClientTwoWatchersOneBehindCostOneFetchPerChange(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ahead, behind := start(t, ServerOptions{}), start(t, ServerOptions{})
		ahead.src.set(paramKey, "3")
		behind.src.set(paramKey, "3")
		// Both have read 3.
		ahead.ask(`{"region":"eu-west-1","wait":"0s","refs":{"/prod/api/key":""}}`)
		behind.ask(`{"region":"eu-west-1","wait":"0s","refs":{"/prod/api/key":""}}`)
		time.Sleep(time.Second)
		var down bool
		var mu sync.Mutex
		c, err := NewClient(ClientOptions{
			URL: "http://feed.internal:9103", Region: "eu-west-1", Interval: 10 * time.Second,
			HTTP: &http.Client{Transport: handlerTransport{&alternate{hs: []http.Handler{ahead.s.Handler(), behind.s.Handler()}}, &down, &mu}},
			Rand: func() float64 { return 0.5 },
		})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { c.Run(ctx); close(done) }()
		defer func() { cancel(); <-done }()

		// The loop: a move is one value fetch, from AWS, which says 4.
		reqs, have := held(t, map[string]string{"A": paramRef}, map[string]string{"A": "3"})
		c.Hold(0, reqs, have)
		synctest.Wait()
		ahead.src.set(paramKey, "4")
		ahead.s.Notify("eu-west-1", paramRef) // the ahead watcher knows at once
		fetches := 0
		deadline := time.After(50 * time.Second) // the behind watcher polls at 1m
	loop:
		for {
			select {
			case names := <-c.Moved():
				fetches++
				if fmt.Sprint(names) != "[A]" {
					t.Fatalf("moved %v", names)
				}
				have["A"] = fetch.Result{Value: secret.FromString("sv-4"), Version: "4"}
				c.Hold(0, reqs, have)
			case <-deadline:
				break loop
			}
		}
		if fetches > 2 {
			t.Errorf("%d value fetches in 50s for one change, want at most 2", fetches)
		}
	})
}

// The feed's word on a move is taken once per version the loop holds: a
// secret that goes 3 → 4 → 3 → 4 (a stage moved back and forth) is told
// each time; a lagging "3" while the loop holds 4, or a feed that makes up
// a new version at every answer, only once.
func TestClientMoveToldOncePerHeldVersion(t *testing.T) {
	c, err := NewClient(ClientOptions{URL: "http://feed:1", Region: "eu-west-1", Interval: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	reqs, have := held(t, map[string]string{"A": "/a"}, map[string]string{"A": "3"})
	c.Hold(0, reqs, have)
	for i, step := range []struct{ told, fetched, want string }{
		{"4", "4", "[A]"}, // the move: fetched
		{"3", "4", "[A]"}, // a late watcher: fetched once, AWS says 4
		{"4", "4", ""},    // the loop holds 4
		{"3", "4", ""},    // the late watcher again: not fetched again
		{"998", "4", ""},  // nor for a made-up version
		{"999", "4", ""},
		{"3", "3", ""},    // (a tick polled it directly: the loop holds 3)
		{"4", "4", "[A]"}, // moved back to 4: told again
		{"3", "3", "[A]"}, // and to 3
	} {
		sent := map[string]string{"/a": have["A"].Version}
		c.answered(&Response{Refs: map[string]RefState{"/a": {Version: step.told}}, Changed: []string{"/a"}, Interval: "5s"}, sent)
		got := ""
		select {
		case names := <-c.Moved():
			got = fmt.Sprint(names)
		default:
		}
		if got != step.want {
			t.Errorf("step %d: feed says %s while the loop holds %s: moved %q, want %q", i, step.told, have["A"].Version, got, step.want)
		}
		have["A"] = fetch.Result{Value: secret.FromString("sv"), Version: step.fetched}
		c.Hold(0, reqs, have)
	}
}
