package refresh

import (
	"fmt"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/ecs-secrets-agent/ecs-secrets-agent/internal/config"
	"github.com/ecs-secrets-agent/ecs-secrets-agent/internal/fetch"
)

// fakeFeed vouches for the versions a test tells it to, until a deadline,
// and records what the loop tells it it holds.
type fakeFeed struct {
	mu    sync.Mutex
	vouch map[string]vouched // by secret name
	moved chan []string
	holds []map[string]string // each Hold: name → version held
	every []time.Duration     // each Hold's interval
}

type vouched struct {
	version string
	until   time.Time
}

func (h *harness) withFeed() *fakeFeed {
	f := &fakeFeed{vouch: map[string]vouched{}, moved: make(chan []string, 1)}
	h.loop.feed = f
	return f
}

// say makes the feed vouch for name at version for d from now.
func (f *fakeFeed) say(name, version string, d time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.vouch[name] = vouched{version, time.Now().Add(d)}
}

func (f *fakeFeed) down() {
	f.mu.Lock()
	defer f.mu.Unlock()
	clear(f.vouch)
}

func (f *fakeFeed) Hold(interval time.Duration, reqs []fetch.Request, have map[string]fetch.Result) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.every = append(f.every, interval)
	m := map[string]string{}
	for _, r := range reqs {
		m[r.Name] = have[r.Name].Version
	}
	f.holds = append(f.holds, m)
}

func (f *fakeFeed) Covered(r fetch.Request, version string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	v, ok := f.vouch[r.Name]
	return ok && v.version == version && !time.Now().After(v.until)
}

func (f *fakeFeed) Moved() <-chan []string { return f.moved }

func (f *fakeFeed) lastHold() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return fmt.Sprint(f.holds[len(f.holds)-1], " every ", f.every[len(f.every)-1])
}

func (f *fakeFeed) holdCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.holds)
}

const forever = 1000 * time.Hour

func TestFeedCoveringEverySecretMeansNoPoll(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		t0 := time.Now()
		h := newHarness(t, twoSecrets, map[string]string{"A": "a1", "B": "b1"}, 0.5)
		ff := h.withFeed()
		ff.say("A", "1", forever)
		ff.say("B", "1", forever)
		if err := h.loop.Start(t.Context()); err != nil {
			t.Fatal(err)
		}
		h.runFor(t, 100*time.Second) // ten ticks: 5s, 15s, … 95s
		if len(h.src.polls) != 0 || fmt.Sprint(h.src.fetched) != "[[A B]]" {
			t.Errorf("polls at %v, fetches %v over ten intervals all covered; want none but the first fetch", h.src.polls, h.src.fetched)
		}
		if got := metricValue(t, h.reg, "ecs_secrets_agent_refreshes_total", "outcome", "success"); got != 10 {
			t.Errorf("refreshes_total{success} = %v, want 10: a covered tick is a successful check", got)
		}
		if got, want := secretMetric(t, h.reg, "ecs_secrets_agent_secret_last_success_timestamp_seconds", "A"), float64(t0.Add(95*time.Second).Unix()); got != want {
			t.Errorf("last success of A at %v, want %v (the last covered tick)", got, want)
		}
		if got := secretMetric(t, h.reg, "ecs_secrets_agent_secret_stale", "B"); got != 0 {
			t.Errorf("secret_stale{B} = %v", got)
		}
		if n, last := ff.holdCount(), ff.lastHold(); n != 11 || last != "map[A:1 B:1] every 10s" {
			t.Errorf("%d holds, last %s; want 11 (start and each tick), map[A:1 B:1]", n, last)
		}
	})
}

func TestFeedOnlyUncoveredSecretsArePolled(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, twoSecrets, map[string]string{"A": "a1", "B": "b1"}, 0.5)
		ff := h.withFeed()
		ff.say("A", "1", forever)
		ff.say("B", "0", forever) // the feed's version is not the one held
		if err := h.loop.Start(t.Context()); err != nil {
			t.Fatal(err)
		}
		h.runFor(t, 36*time.Second)
		if got := fmt.Sprint(h.src.polled); got != "[[B] [B] [B] [B]]" {
			t.Errorf("polled %s, want B alone at each of 4 ticks", got)
		}
		if got := fmt.Sprint(h.src.polls); got != "[5s 15s 25s 35s]" {
			t.Errorf("polls at %s, want the interval's ticks", got)
		}
	})
}

func TestFeedMovedFetchesExactlyThoseSecretsOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := newRecorder(1)
		h := newHarnessWith(t, twoSecrets, map[string]string{"A": "a1", "B": "b1"}, 0.5, rec.factory)
		ff := h.withFeed()
		ff.say("A", "1", forever)
		ff.say("B", "1", forever)
		stop := h.running(t, Events{})
		defer stop()
		advance(6 * time.Second)
		h.src.rotate("A", "a2")
		ff.say("A", "2", forever)
		ff.moved <- []string{"A"}
		synctest.Wait()
		if got := fmt.Sprint(h.src.fetched); got != "[[A B] [A]]" {
			t.Errorf("fetches %s, want the first and one of A", got)
		}
		if h.file(t, "A") != "a2" || rec.count(0) != 1 || !slices.Equal(rec.last(0).Changed, []string{"A"}) {
			t.Errorf("A=%q, %d actions; want a2 and one action on [A]", h.file(t, "A"), rec.count(0))
		}
		if got := secretMetric(t, h.reg, "ecs_secrets_agent_secret_changes_total", "A"); got != 1 {
			t.Errorf("changes_total{A} = %v", got)
		}
		if got := ff.lastHold(); got != "map[A:2 B:1] every 10s" {
			t.Errorf("feed told %s after the fetch, want map[A:2 B:1]", got)
		}
		// Told again of what it holds: nothing to fetch.
		ff.moved <- []string{"A", "B"}
		advance(60 * time.Second)
		if len(h.src.fetched) != 2 || len(h.src.polls) != 0 || rec.count(0) != 1 {
			t.Errorf("fetches %v, polls %v, %d actions after a repeated notice; want no call and no action", h.src.fetched, h.src.polls, rec.count(0))
		}
	})
}

func TestFeedDownPollsAtIntervalAndBackStopsPolling(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, twoSecrets, map[string]string{"A": "a1", "B": "b1"}, 0.5)
		ff := h.withFeed()
		ff.say("A", "1", forever)
		ff.say("B", "1", forever)
		stop := h.running(t, Events{})
		defer stop()
		advance(26 * time.Second)
		ff.down()
		advance(20 * time.Second) // ticks at 35s and 45s
		ff.say("A", "1", forever)
		ff.say("B", "1", forever)
		advance(60 * time.Second)
		if got := fmt.Sprint(h.src.polls); got != "[35s 45s]" {
			t.Errorf("polls at %s, want [35s 45s]: only while the feed was down, at the interval", got)
		}
		if got := fmt.Sprint(h.src.polled); got != "[[A B] [A B]]" {
			t.Errorf("polled %s", got)
		}
	})
}

func TestFeedViewTooOldMeansDirectPolling(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, twoSecrets, map[string]string{"A": "a1", "B": "b1"}, 0.5)
		ff := h.withFeed()
		ff.say("A", "1", 12*time.Second) // the feed's last answer ages out at 12s
		ff.say("B", "1", forever)
		if err := h.loop.Start(t.Context()); err != nil {
			t.Fatal(err)
		}
		h.runFor(t, 36*time.Second)
		if got := fmt.Sprint(h.src.polls, h.src.polled); got != "[15s 25s 35s] [[A] [A] [A]]" {
			t.Errorf("polls %s, want A alone from the first tick past 12s", got)
		}
	})
}

func TestFeedFetchBehindTheFeedIsRetriedSoon(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, twoSecrets, map[string]string{"A": "a1", "B": "b1"}, 0.5)
		ff := h.withFeed()
		ff.say("A", "1", forever)
		ff.say("B", "1", forever)
		stop := h.running(t, Events{})
		defer stop()
		advance(6 * time.Second)
		// The feed saw version 2; the value fetch still reads version 1.
		ff.say("A", "2", forever)
		ff.moved <- []string{"A"}
		advance(500 * time.Millisecond)
		h.src.rotate("A", "a2")
		advance(60 * time.Second)
		if got := fmt.Sprint(h.src.fetchAt); got != "[0s 6s 7s]" {
			t.Errorf("fetches at %s, want [0s 6s 7s]: again 1s after the stale read, then no more", got)
		}
		if h.file(t, "A") != "a2" || h.runs != 1 || len(h.src.polls) != 0 {
			t.Errorf("A=%q, %d actions, polls %v", h.file(t, "A"), h.runs, h.src.polls)
		}
	})
}

// A fetch the feed asked for that fails is retried by its own backoff (1s
// doubling); the ticks in between do not poll it as well: the calls would
// double on the quota that likely failed it. It is stale meanwhile.
func TestFeedFailedFetchIsRetriedByItsBackoffNotByTicks(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, twoSecrets, map[string]string{"A": "a1", "B": "b1"}, 0.5)
		ff := h.withFeed()
		ff.say("A", "1", forever)
		ff.say("B", "1", forever)
		stop := h.running(t, Events{})
		defer stop()
		advance(6 * time.Second)
		h.src.rotate("A", "a2")
		h.src.setFault("ServiceUnavailable")
		ff.say("A", "2", forever)
		ff.moved <- []string{"A"}
		advance(9500 * time.Millisecond) // to 15.5s: fetches at 6, 7, 9, 13; the tick at 15 leaves A alone
		if got := secretMetric(t, h.reg, "ecs_secrets_agent_secret_stale", "A"); got != 1 {
			t.Errorf("secret_stale{A} = %v while its fetch fails", got)
		}
		h.src.setFault("")
		advance(30 * time.Second)
		if got := fmt.Sprint(h.src.fetchAt); got != "[0s 6s 7s 9s 13s 21s]" {
			t.Errorf("fetches at %s, want [0s 6s 7s 9s 13s 21s]: 1s doubling until one succeeds", got)
		}
		if got := fmt.Sprint(h.src.polled); got != "[]" {
			t.Errorf("polled %s, want nothing: the retry was scheduled", got)
		}
		if h.file(t, "A") != "a2" || h.runs != 1 {
			t.Errorf("A=%q, %d actions", h.file(t, "A"), h.runs)
		}
		if got := secretMetric(t, h.reg, "ecs_secrets_agent_secret_stale", "A"); got != 0 {
			t.Errorf("secret_stale{A} = %v after the fetch succeeded", got)
		}
	})
}

// Throttled: the fleet the feed told at once is over the quota; the retry
// is spread over a whole interval (rand 0.5 of 10s), not 1s later.
func TestFeedThrottledFetchRetriesWithinTheInterval(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, twoSecrets, map[string]string{"A": "a1", "B": "b1"}, 0.5)
		ff := h.withFeed()
		ff.say("A", "1", forever)
		ff.say("B", "1", forever)
		stop := h.running(t, Events{})
		defer stop()
		advance(6 * time.Second)
		h.src.rotate("A", "a2")
		h.src.setFault("ThrottlingException")
		ff.say("A", "2", forever)
		ff.moved <- []string{"A"}
		advance(time.Second)
		h.src.setFault("")
		advance(30 * time.Second)
		if got := fmt.Sprint(h.src.fetchAt); got != "[0s 6s 11s]" {
			t.Errorf("fetches at %s, want [0s 6s 11s]: a throttled fetch retried half an interval later (rand 0.5)", got)
		}
	})
}

func TestFeedReloadChangesWhatItWatches(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, twoSecrets, map[string]string{"A": "a1", "B": "b1", "C": "c1"}, 0.5)
		ff := h.withFeed()
		cfgCh := make(chan *config.Settings)
		stop := h.running(t, Events{Config: cfgCh})
		defer stop()
		if got := ff.lastHold(); got != "map[A:1 B:1] every 10s" {
			t.Fatalf("after start the feed was told %s", got)
		}
		cfgCh <- reloadCfg(t, h, `{"secrets":[{"name":"A","valueFrom":"/a"},{"name":"C","valueFrom":"/c"}],"refresh":{"interval":"20s","jitter":"2s","maxStale":"60s"}}`)
		synctest.Wait()
		if got := ff.lastHold(); got != "map[A:1 C:1] every 20s" {
			t.Errorf("after the reload the feed was told %s, want map[A:1 C:1] every 20s", got)
		}
		ff.moved <- []string{"B"} // no longer configured
		synctest.Wait()
		if got := fmt.Sprint(h.src.fetched); got != "[[A B] [C]]" {
			t.Errorf("fetches %s: a removed secret must not be fetched", got)
		}
	})
}

// Tasks told of one change at once retry a failed fetch at spread-out
// times, not in step: the retry is jittered over [d/2, 3d/2).
func TestFeedRetryIsJittered(t *testing.T) {
	for _, tc := range []struct {
		rnd   float64
		fails int
		want  time.Duration
	}{
		{0, 1, 500 * time.Millisecond},
		{0.5, 1, time.Second},
		{0.999, 1, 1499 * time.Millisecond},
		{0, 3, 2 * time.Second},
		{0.999, 3, 5996 * time.Millisecond},
		{0.999, 10, 10 * time.Second}, // capped at the interval
	} {
		if got := feedBackoff(tc.fails, 10*time.Second, func() float64 { return tc.rnd }); got != tc.want {
			t.Errorf("rand %v, failure %d: retry in %s, want %s", tc.rnd, tc.fails, got, tc.want)
		}
	}
}
