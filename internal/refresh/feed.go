package refresh

import (
	"context"
	"maps"
	"time"

	"github.com/ecs-secrets-agent/ecs-secrets-agent/internal/fetch"
)

// Feed is the change feed as the loop sees it (docs/FEED.md; *feed.Client
// implements it). It vouches for the versions the agent holds, so the loop
// polls AWS only for what it does not cover, and it says which secrets
// moved, so the loop fetches only those.
type Feed interface {
	// Hold tells the feed the loop's interval (how fresh the feed's view
	// must be to cover a secret), which secrets it keeps and the version it
	// holds of each (have's Version; a secret absent from have holds none).
	// The loop calls it after every fetch, cycle and reload.
	Hold(interval time.Duration, reqs []fetch.Request, have map[string]fetch.Result)
	// Covered reports whether the feed vouches, now, that version is the
	// current one of r: the loop need not poll AWS for it.
	Covered(r fetch.Request, version string) bool
	// Moved sends the names of secrets whose version the feed says moved.
	Moved() <-chan []string
}

// uncovered is the part of reqs the feed does not vouch for.
func (l *Loop) uncovered(reqs []fetch.Request) []fetch.Request {
	var out []fetch.Request
	for _, r := range reqs {
		if !l.feed.Covered(r, l.have[r.Name].Version) {
			out = append(out, r)
		}
	}
	return out
}

// hold tells the feed what the loop holds now.
func (l *Loop) hold() {
	if l.feed != nil {
		l.feed.Hold(l.settings.Interval, requests(l.settings), l.have)
	}
}

// fromFeed fetches the secrets the feed says moved (names), and those of
// an earlier call that were still behind it, without polling first: one
// value fetch per change. What a fetch leaves behind the feed's version
// (AWS is eventually consistent) or cannot read is tried again soon, 1s
// doubling (jittered) up to the interval, until it is covered or a cycle
// polls it.
func (l *Loop) fromFeed(ctx context.Context, names []string) {
	want := map[string]bool{}
	for _, n := range names {
		want[n] = true
	}
	maps.Copy(want, l.feedRetry)
	reqs := requests(l.settings)
	var get []fetch.Request
	for _, r := range reqs {
		if want[r.Name] && !l.feed.Covered(r, l.have[r.Name].Version) {
			get = append(get, r)
		}
	}
	if len(get) == 0 {
		l.feedRetry, l.feedFails = nil, 0
		return
	}
	cctx, cancel := context.WithTimeout(ctx, cycleTimeout(l.settings.Interval))
	out, err := l.src.Fetch(cctx, get)
	cancel()
	if ctx.Err() != nil {
		return // stopping
	}
	l.take(out)
	failed := failures(err)
	l.log.Debug("fetched what the change feed said moved", "secrets", len(get), "failed", len(failed))
	l.track(get, failed)
	l.deliver(ctx, "change", false)
	l.hold()
	retry := map[string]bool{}
	for _, r := range get {
		if failed[r.Name] != nil || !l.feed.Covered(r, l.have[r.Name].Version) {
			retry[r.Name] = true
		}
	}
	if len(retry) == 0 {
		l.feedRetry, l.feedFails = nil, 0
		return
	}
	l.feedRetry = retry
	l.feedFails++
	l.feedRetryIn = feedBackoff(l.feedFails, l.settings.Interval, l.rand)
	if outcome(failed) == Throttled {
		// The fleet the feed told at once is over the quota: spread the
		// retries over a whole interval, as direct polling would.
		l.feedRetryIn = max(time.Second, time.Duration(l.rand()*float64(l.settings.Interval)))
	}
}

// feedBackoff is the wait before fetching again what the feed said moved:
// 1s doubling per failure, jittered over [d/2, 3d/2) so that the thousands
// of tasks the feed told at once do not retry in step against the quota
// that throttled them, and capped at the interval.
func feedBackoff(failures int, interval time.Duration, rnd func() float64) time.Duration {
	d := time.Second << min(failures-1, 16)
	d = d/2 + time.Duration(rnd()*float64(d))
	return min(d, max(interval, time.Second))
}
