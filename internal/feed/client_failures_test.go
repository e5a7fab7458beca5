package feed

import (
	"fmt"
	"testing"
	"time"
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
