package feed

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ecs-secrets-agent/ecs-secrets-agent/internal/fetch"
	"github.com/ecs-secrets-agent/ecs-secrets-agent/internal/metrics"
)

// ClientOptions configure a Client.
type ClientOptions struct {
	URL      string        // refresh.feed: http://HOST:PORT
	Region   string        // the task's region, for bare Parameter Store names
	Interval time.Duration // the agent's refresh interval: the freshness it requires, and its fallback polling
	HTTP     *http.Client  // nil means a client of its own
	// Token is sent as Authorization: Bearer on every request, when set
	// (AGENT_FEED_TOKEN).
	Token Token
	Log   *slog.Logger
	// Registerer takes the client's metrics (source in use, feed errors);
	// nil registers none.
	Registerer prometheus.Registerer
	Now        func() time.Time
	// Rand jitters the backoff after a failed request, in [0, 1); nil is
	// math/rand. A thousand agents whose watcher restarts must not all
	// come back in the same second.
	Rand func() float64
}

// Client timing (docs/FEED.md "The client's side").
const (
	minWait      = time.Second
	maxWait      = time.Minute
	silentGrace  = 10 * time.Second // past wait, a silent feed counts as down
	maxBackoff   = 30 * time.Second
	minAskGap    = time.Second // between two requests, whatever a feed answers
	maxAnswer    = 4 << 20     // bytes of one answer read at most
	maxErrorText = 200         // bytes of a feed's error message logged
)

// Client is an agent's side of the feed. It implements refresh.Feed; Run
// keeps a request open to the feed.
type Client struct {
	o       ClientOptions
	url     string
	shown   string // the URL for logs, a password redacted
	http    *http.Client
	metrics *metrics.FeedClient
	moved   chan []string // cap 1; sent to under emitMu, so a send never blocks
	emitMu  sync.Mutex
	kick    chan struct{} // cap 1; the refs to ask about changed

	mu           sync.Mutex
	interval     time.Duration       // the loop's, which a reload may change
	refs         map[string]*watched // by valueFrom as written; pinned ones excluded
	inflight     map[string]string   // the refs of the request in flight
	inflightWait string
	state        map[string]RefState // the feed's last answer, for the refs it was asked about
	answerAt     time.Time
	source       string // "", "feed" or "direct"
	lastReason   string // of the last failed request, since the last answer
	warned       map[string]bool
	// movedFor is, by secret name, the version the loop held when the
	// feed last said it moved. It is not said to move again while the loop
	// holds that version: the loop fetched, and if AWS did not agree with
	// the feed (a watcher behind another one at the same address, or a
	// lying feed), its own retry and its next tick take it from there.
	movedFor map[string]string
	// splayUntil is, by valueFrom, when a fetch held back by the feed's
	// splay is handed to the loop; until then the ref counts as covered.
	splayUntil map[string]time.Time
}

// watched is one valueFrom and the secrets that use it.
type watched struct {
	names []string
	held  []string // the version the loop holds, by names' index
}

// NewClient returns a client; Run starts it.
func NewClient(o ClientOptions) (*Client, error) {
	u, err := url.Parse(o.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, errors.New("change feed URL: want http://HOST:PORT")
	}
	if o.Interval <= 0 {
		return nil, fmt.Errorf("change feed client: interval %s must be positive", o.Interval)
	}
	if o.HTTP == nil {
		o.HTTP = &http.Client{}
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Rand == nil {
		o.Rand = rand.Float64
	}
	return &Client{
		o: o, url: strings.TrimSuffix(o.URL, "/") + Path, shown: u.Redacted(), http: o.HTTP, interval: o.Interval,
		metrics: metrics.NewFeedClient(o.Registerer),
		moved:   make(chan []string, 1), kick: make(chan struct{}, 1),
		refs: map[string]*watched{}, state: map[string]RefState{}, warned: map[string]bool{},
		movedFor: map[string]string{}, splayUntil: map[string]time.Time{},
	}, nil
}

// ClientWait is how long a client asks the feed to hold its request: half
// its interval, so that a quiet feed's answers come often enough to keep
// every secret covered, within [1s, 60s].
func ClientWait(interval time.Duration) time.Duration {
	return min(max(interval/2, minWait), maxWait)
}

// URL is the feed's URL for logs, a password in it redacted.
func (c *Client) URL() string { return c.shown }

// Moved sends the names of secrets whose version the feed says moved.
func (c *Client) Moved() <-chan []string { return c.moved }

// Hold records the agent's interval, the secrets it keeps and the version
// it holds of each; a change of what to ask the feed re-asks at once.
func (c *Client) Hold(interval time.Duration, reqs []fetch.Request, have map[string]fetch.Result) {
	refs := map[string]*watched{}
	for _, r := range reqs {
		if fetch.Pinned(r.Ref) {
			continue
		}
		w := refs[r.Ref.Raw]
		if w == nil {
			w = &watched{}
			refs[r.Ref.Raw] = w
		}
		w.names = append(w.names, r.Name)
		w.held = append(w.held, have[r.Name].Version)
	}
	c.mu.Lock()
	if interval > 0 {
		c.interval = interval
	}
	c.refs = refs
	for raw := range c.state {
		if refs[raw] == nil {
			delete(c.state, raw)
		}
	}
	for name, was := range c.movedFor {
		if v, ok := have[name]; !ok || v.Version != was {
			delete(c.movedFor, name)
		}
	}
	// Under c.mu, as Run drains kick and sets inflight: a kick is never
	// left over for a request that already carries these refs.
	defer c.mu.Unlock()
	if next, _ := c.request(); c.inflight == nil || next.Wait != c.inflightWait || !maps.Equal(next.Refs, c.inflight) {
		select {
		case c.kick <- struct{}{}:
		default:
		}
	}
}

// Covered reports whether the feed's last answer vouches that version is
// r's current one: the feed named that version, reported no error, and
// read it no longer ago than the agent's interval, counting the time since
// the answer. A pinned reference never changes, so it is always covered.
func (c *Client) Covered(r fetch.Request, version string) bool {
	if fetch.Pinned(r.Ref) {
		return true
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.source == "direct" {
		// The feed is failing: it would not tell a change made since its
		// last answer, so the next tick polls (a rotation is then seen
		// within one interval, as without a feed, not two).
		return false
	}
	if until, ok := c.splayUntil[r.Ref.Raw]; ok {
		if c.o.Now().Before(until) {
			// Told of a change whose fetch waits out its splay: a
			// tick's poll now would spend the very quota the splay
			// spreads.
			return true
		}
		delete(c.splayUntil, r.Ref.Raw)
	}
	st, ok := c.state[r.Ref.Raw]
	// A negative, NaN or huge age is a feed's lie or bug: not covered.
	if !ok || st.Version == "" || st.Error != "" || st.Version != version || !(st.Age >= 0 && st.Age <= c.interval.Seconds()) {
		return false
	}
	age := time.Duration(st.Age*float64(time.Second)) + c.o.Now().Sub(c.answerAt)
	return age <= c.interval
}

// request builds the next request from what the loop holds: for each
// valueFrom, the version the feed last told, else the loop's. Refs past
// the protocol's limits (count or body size) are left out, in a stable
// order, and polled directly by the loop. c.mu is held.
func (c *Client) request() (Request, map[string]string) {
	req := Request{Region: c.o.Region, Wait: ClientWait(c.interval).String(), Refs: map[string]string{}}
	size := len(Encode(req))
	for _, raw := range slices.Sorted(maps.Keys(c.refs)) {
		v := c.refs[raw].held[0]
		if st, ok := c.state[raw]; ok && st.Version != "" {
			v = st.Version
		}
		size += len(Encode(raw)) + len(Encode(v)) + 2 // colon and comma
		if len(req.Refs) == MaxRefsPerRequest || size > MaxBodyBytes {
			break
		}
		req.Refs[raw] = v
	}
	return req, req.Refs
}

// errKicked ends a held request whose refs are out of date.
var errKicked = errors.New("refs changed")

// Run asks the feed until ctx ends: one request held open at a time, asked
// again at once after each answer, after a backoff after each failure.
func (c *Client) Run(ctx context.Context) {
	fails := 0
	var last time.Time
	for ctx.Err() == nil {
		c.mu.Lock()
		select {
		case <-c.kick:
		default:
		}
		req, sent := c.request()
		over := len(c.refs) - len(sent)
		interval := c.interval
		c.inflight, c.inflightWait = sent, req.Wait
		if len(sent) == 0 {
			c.inflight = nil
		}
		c.mu.Unlock()
		if len(sent) == 0 {
			select {
			case <-ctx.Done():
			case <-c.kick:
			}
			continue
		}
		if over > 0 {
			c.warnOnce("limit", "more references than one request to the change feed may carry; the rest are polled directly",
				"refs", len(sent)+over, "sent", len(sent))
		}
		if gap := minAskGap - c.o.Now().Sub(last); gap > 0 && !last.IsZero() {
			if !sleep(ctx, gap) {
				return
			}
		}
		last = c.o.Now()
		resp, reason, err := c.ask(ctx, req, ClientWait(interval))
		switch {
		case ctx.Err() != nil:
			return
		case errors.Is(err, errKicked):
		case err != nil:
			fails++
			c.failed(reason, err)
			d := min(time.Second<<min(fails-1, 16), min(interval, maxBackoff))
			d = d/2 + time.Duration(c.o.Rand()*float64(d/2))
			if ra := retryAfter(err); ra > 0 {
				d = max(d, min(ra, maxBackoff))
			}
			if !sleep(ctx, d) {
				return
			}
		default:
			fails = 0
			c.answered(resp, sent)
		}
	}
}

// feedError is a failed request, with its reason (a label of
// feed_errors_total).
type feedError struct {
	reason     string
	msg        string
	retryAfter time.Duration
}

func (e *feedError) Error() string { return e.msg }

func retryAfter(err error) time.Duration {
	if e, ok := errors.AsType[*feedError](err); ok {
		return e.retryAfter
	}
	return 0
}

var errSilent = errors.New("silent past its wait")

// ask sends one request and reads the answer. A failure's reason is one
// of metrics.FeedErrorReasons.
func (c *Client) ask(ctx context.Context, req Request, wait time.Duration) (*Response, string, error) {
	rctx, cancel := context.WithTimeoutCause(ctx, wait+silentGrace, errSilent)
	defer cancel()
	kctx, kcancel := context.WithCancelCause(rctx)
	defer kcancel(nil)
	done := make(chan struct{})
	defer close(done)
	go func() {
		select {
		case <-c.kick:
			kcancel(errKicked)
		case <-done:
		}
	}()
	fail := func(reason, format string, args ...any) (*Response, string, error) {
		return nil, reason, &feedError{reason: reason, msg: fmt.Sprintf(format, args...)}
	}
	classify := func(err error) (*Response, string, error) {
		switch cause := context.Cause(kctx); {
		case errors.Is(cause, errKicked):
			return nil, "", errKicked
		case errors.Is(cause, errSilent):
			return fail("timeout", "no answer within %s (the request's wait + %s)", wait+silentGrace, silentGrace)
		}
		if ne, ok := errors.AsType[net.Error](err); ok && ne.Timeout() {
			return fail("timeout", "%v", err)
		}
		return fail("unreachable", "%v", err)
	}
	hreq, err := http.NewRequestWithContext(kctx, http.MethodPost, c.url, bytes.NewReader(Encode(req)))
	if err != nil {
		return fail("unreachable", "%v", err)
	}
	hreq.Header.Set("Content-Type", "application/json")
	c.o.Token.authorize(hreq)
	hresp, err := c.http.Do(hreq)
	if err != nil {
		return classify(err)
	}
	defer hresp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(hresp.Body, maxAnswer+1))
	if err != nil {
		return classify(err)
	}
	if hresp.StatusCode == http.StatusUnauthorized {
		// Our own words, not the feed's: nothing it sends back, and never
		// the token, reaches the log.
		if c.o.Token.Set() {
			return fail("unauthorized", "status 401: the feed refused this agent's token: %s is wrong (not one the watcher accepts)", TokenEnv)
		}
		return fail("unauthorized", "status 401: the feed requires a token and %s is missing: set it on this agent", TokenEnv)
	}
	if hresp.StatusCode != http.StatusOK {
		var eb ErrorBody
		_ = json.Unmarshal(body, &eb)
		e := &feedError{reason: "status", msg: fmt.Sprintf("status %d: %q", hresp.StatusCode, clip(eb.Error))}
		if s, err := strconv.Atoi(hresp.Header.Get("Retry-After")); err == nil && s > 0 {
			e.retryAfter = time.Duration(s) * time.Second
		}
		return nil, "status", e
	}
	resp, err := parseAnswer(body)
	if err != nil {
		return fail("malformed", "%v", err)
	}
	return resp, "", nil
}

// parseAnswer reads a 200 answer. Unknown fields are allowed, so that a
// newer server can add some; a missing refs or interval is not v1.
func parseAnswer(body []byte) (*Response, error) {
	if len(body) > maxAnswer {
		return nil, fmt.Errorf("answer over %d bytes", maxAnswer)
	}
	var resp Response
	if err := json.Unmarshal(body, &resp); err != nil {
		return nil, fmt.Errorf("answer is not protocol v1 JSON: %v", err)
	}
	if resp.Refs == nil {
		return nil, errors.New("answer has no refs")
	}
	if d, err := time.ParseDuration(resp.Interval); err != nil || d <= 0 {
		return nil, fmt.Errorf("answer's interval %q is not a duration", clip(resp.Interval))
	}
	return &resp, nil
}

// answered takes an answer to the request that carried sent.
func (c *Client) answered(resp *Response, sent map[string]string) {
	now := c.o.Now()
	var moved []string
	c.mu.Lock()
	c.answerAt = now
	// The answer's time covers only the refs it names: a ref left out of
	// the request (past the limits) must not stay covered by an old one.
	for raw := range c.state {
		if _, ok := sent[raw]; !ok {
			delete(c.state, raw)
		}
	}
	for raw := range sent {
		st, ok := resp.Refs[raw]
		if !ok || c.refs[raw] == nil {
			delete(c.state, raw)
			continue
		}
		c.state[raw] = st
	}
	later := map[time.Duration][]string{}
	for _, raw := range resp.Changed {
		w, st := c.refs[raw], c.state[raw]
		if _, asked := sent[raw]; !asked || w == nil || st.Version == "" {
			continue
		}
		// The feed told every client at once: wait a random part of its
		// splay, so that the fleet's fetches fit the account's quota. Not
		// past the interval: by then a tick polls it anyway, and a feed
		// cannot delay a rotation by more. Capped in seconds, before the
		// conversion, which a huge splay would overflow; the longest
		// splays are the biggest fleets', which need it most.
		var wait time.Duration
		if st.Splay > 0 {
			wait = time.Duration(c.o.Rand() * min(st.Splay, c.interval.Seconds()) * float64(time.Second))
		}
		for i, name := range w.names {
			if w.held[i] == st.Version {
				continue
			}
			if was, ok := c.movedFor[name]; !ok || was != w.held[i] {
				c.movedFor[name] = w.held[i]
				if wait > 0 {
					later[wait] = append(later[wait], name)
					c.splayUntil[raw] = now.Add(wait)
				} else {
					moved = append(moved, name)
				}
			}
		}
	}
	was := c.source
	c.source = "feed"
	c.lastReason = ""
	interval := c.interval
	c.mu.Unlock()

	if was != "feed" {
		c.metrics.SetSource(true)
		c.o.Log.Info("change feed answering; polling AWS only for the secrets it does not cover", "feed", c.shown)
	}
	if d, _ := time.ParseDuration(resp.Interval); d > interval {
		c.warnOnce("interval", "the change feed polls AWS less often than this agent's refresh interval, so its view is too old to cover secrets and the agent polls AWS itself; run the watchers at half the agents' interval or less",
			"feed_interval", d.String(), "interval", interval.String())
	}
	if len(moved) > 0 {
		slices.Sort(moved)
		c.o.Log.Debug("change feed says secrets moved", "secrets", moved)
		c.emit(moved)
	}
	for wait, names := range later {
		slices.Sort(names)
		c.o.Log.Debug("change feed says secrets moved; fetching after the splay", "secrets", names, "in", wait.String())
		time.AfterFunc(wait, func() { c.emit(names) })
	}
}

// emit hands names to the loop without blocking: names it has not taken
// yet are merged into one send.
func (c *Client) emit(names []string) {
	c.emitMu.Lock() // Run and the splay timers send: drain and send as one
	defer c.emitMu.Unlock()
	select {
	case prev := <-c.moved:
		names = slices.Compact(slices.Sorted(slices.Values(append(prev, names...))))
	default:
	}
	c.moved <- names
}

// failed records a failed request; the first of a run switches the source
// to direct polling, with one log line that says why. A refused token is
// an error line of its own, also when the feed was failing for another
// reason before (unreachable, then up but refusing): someone must fix it.
func (c *Client) failed(reason string, err error) {
	c.metrics.FeedError(reason)
	c.mu.Lock()
	was, wasReason := c.source, c.lastReason
	c.source, c.lastReason = "direct", reason
	c.mu.Unlock()
	if was != "direct" {
		c.metrics.SetSource(false)
	}
	if reason == "unauthorized" && (was != "direct" || wasReason != reason) {
		c.o.Log.Error("change feed refused this agent's token; polling AWS directly at the refresh interval for the secrets it no longer covers",
			"feed", c.shown, "reason", reason, "error", err.Error())
		return
	}
	if was == "direct" {
		c.o.Log.Debug("change feed still not answering", "feed", c.shown, "reason", reason, "error", err.Error())
		return
	}
	c.o.Log.Warn("change feed not answering; polling AWS directly at the refresh interval for the secrets it no longer covers",
		"feed", c.shown, "reason", reason, "error", err.Error())
}

func (c *Client) warnOnce(key, msg string, args ...any) {
	c.mu.Lock()
	done := c.warned[key]
	c.warned[key] = true
	c.mu.Unlock()
	if !done {
		c.o.Log.Warn(msg, append([]any{"feed", c.shown}, args...)...)
	}
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// clip bounds a string the feed sent before it reaches a log line.
func clip(s string) string {
	if len(s) > maxErrorText {
		return s[:maxErrorText] + "…"
	}
	return s
}
