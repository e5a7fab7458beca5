package feed

import (
	"strings"
	"testing"
	"testing/synctest"
	"time"
)

// A prompt poll of other keys (a new client's first read, a change event)
// must not clear the failure of the keys it did not read: else /readyz
// forgets a throttled or failing AWS whenever a fleet keeps asking about
// new references, and never turns unready.
func TestPartialPollKeepsOtherKeysFailure(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := start(t, ServerOptions{})
		h.src.set(paramKey, "3")
		h.ask(`{"region":"eu-west-1","refs":{"/prod/api/key":""}}`)
		h.src.setFail(paramKey, "ThrottlingException")
		time.Sleep(time.Minute) // the full poll: throttled
		const detail = "change feed polls failing: 1 of 1 references (ThrottlingException)"
		if _, d := h.st.Ready(); !strings.Contains(d, detail) {
			t.Fatalf("readyz detail %q after a throttled poll, want %q", d, detail)
		}
		// A new key, read alone within 200 ms, succeeds.
		h.src.set(dbKey, "v1")
		h.ask(`{"region":"eu-west-1","refs":{"` + dbARN + `":""}}`)
		if _, d := h.st.Ready(); !strings.Contains(d, "change feed polls failing: 1 of 2 references (ThrottlingException)") {
			t.Errorf("readyz detail %q after a prompt poll of another key, want the throttled key still listed", d)
		}
		// Still failing at every full poll: unready after 3 × interval,
		// counted from the first failure, whatever prompt polls happen.
		for range 3 {
			time.Sleep(time.Minute)
			h.s.Notify("eu-west-1", dbARN)
			time.Sleep(time.Second)
		}
		time.Sleep(10 * time.Second)
		if ok, d := h.st.Ready(); ok {
			t.Errorf("ready after %s of failing polls: %q", 3*time.Minute, d)
		}
	})
}

// docs/FEED.md: age is 0 when there is no version. A ref whose reads
// started failing permanently after a good one has no version: its age is
// 0, not the age of a version the answer does not carry. A transient
// failure keeps the version, aging, and says nothing to the client.
func TestFailingRefHasNoAge(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := start(t, ServerOptions{})
		h.src.set(paramKey, "3")
		h.ask(`{"region":"eu-west-1","refs":{"/prod/api/key":""}}`)
		h.src.setFail(paramKey, "InternalServerError")
		time.Sleep(time.Minute)
		a := h.ask(`{"region":"eu-west-1","wait":"0s","refs":{"/prod/api/key":"3"}}`)
		if !strings.Contains(a.body, `{"/prod/api/key":{"version":"3","age":60}}`) {
			t.Errorf("answer %s after a 5xx: want the last version, a minute old, no error", a.body)
		}
		h.src.setFail(paramKey, "AccessDeniedException")
		time.Sleep(time.Minute)
		a = h.ask(`{"region":"eu-west-1","wait":"0s","refs":{"/prod/api/key":"3"}}`)
		if !strings.Contains(a.body, `{"/prod/api/key":{"age":0,"error":"`) {
			t.Errorf("answer %s after AccessDenied: want no version and age 0", a.body)
		}
	})
}
