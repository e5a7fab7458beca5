package feed

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"mime"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ecs-secrets-agent/ecs-secrets-agent/internal/fetch"
	"github.com/ecs-secrets-agent/ecs-secrets-agent/internal/metrics"
	"github.com/ecs-secrets-agent/ecs-secrets-agent/internal/refresh"
	"github.com/ecs-secrets-agent/ecs-secrets-agent/internal/status"
)

// Versioner is what the server needs of *fetch.Fetcher: versions, never
// values. One serves every region: Key fills in each bare name's region.
type Versioner interface {
	Versions(ctx context.Context, reqs []fetch.Request) (map[string]fetch.Version, error)
}

// ServerOptions configure a Server. Zero values take the defaults, but for
// Regions.
type ServerOptions struct {
	Source Versioner
	// Regions are the regions whose references the server tracks (agent
	// watch --feed-regions). A ref in any other region, named in its ARN
	// or by the request's region for a bare name, is answered with an
	// error and never tracked or polled: no client, no call, nothing kept
	// for that region. None serves no reference at all.
	Regions []string
	// Tokens are the bearer tokens a request may carry (AGENT_FEED_TOKEN,
	// then AGENT_FEED_TOKEN_PREVIOUS while a rotation is under way). Set
	// ones are required on every request to Path; none serves anyone.
	Tokens           []Token
	Interval, Jitter time.Duration // between polls; Interval 0 means DefaultServerInterval
	MaxClients       int           // requests held at once; 0 means DefaultMaxClients
	MaxRefs          int           // distinct keys tracked; 0 means DefaultMaxRefs
	Log              *slog.Logger
	Registerer       prometheus.Registerer // for the feed's metrics; nil registers none
	Status           *status.Status        // feed problems for /readyz; may be nil
	Now              func() time.Time
	Rand             func() float64
}

// Defaults of ServerOptions.
const (
	DefaultServerInterval = time.Minute
	DefaultMaxClients     = 20000
	DefaultMaxRefs        = 10000
)

// Timing of the server.
const (
	// coalesceDelay gathers the keys that arrive together (a fleet of
	// tasks starting, a burst of change events) into one Versions call.
	coalesceDelay = 200 * time.Millisecond
	// IdleAfter: a key no request named for this long is dropped.
	IdleAfter = 10 * time.Minute
	// Retry-After of a 503: a full server sheds clients for a while (they
	// poll AWS themselves meanwhile); references free up only as keys go
	// idle.
	retryClients = 10 * time.Second
	retryRefs    = time.Minute
)

// statusKey is the feed's /readyz problem.
const statusKey = "feed"

// Server is the feed's server side: the tracked references and the held
// requests. Handler serves it; Run polls AWS.
type Server struct {
	o        ServerOptions
	log      *slog.Logger
	served   map[string]bool // o.Regions
	regions  string          // o.Regions, comma-separated, for the refused refs' error
	m        *metrics.FeedServer
	interval time.Duration
	kick     chan struct{} // something is pending: poll it soon
	stopped  chan struct{} // closed when Run returns: held requests are answered
	stopOnce sync.Once
	tokens   []Token               // o.Tokens that are set
	equal    func(x, y []byte) int // compares token digests: subtle.ConstantTimeCompare

	mu       sync.Mutex
	entries  map[string]*entry
	pending  map[string]bool // keys to poll promptly: new, or notified
	held     int
	current  time.Duration // the polling interval now, grown by throttling
	failedAt time.Time     // since when polls fail; zero while they work
}

// entry is one tracked key.
type entry struct {
	ref     fetch.Ref // the first request's, region filled in, JSON key dropped
	pinned  bool      // its version is the pin: never polled
	read    bool      // a poll answered for it (or it is pinned)
	version string    // "" until read, and while reads fail
	readAt  time.Time // last successful read
	err     string    // why the last read failed
	failing string    // the AWS code while reads fail for a transient reason, for /readyz
	splay   float64   // seconds to spread the fetches of version over (SplayFor)
	askedAt time.Time // last request that named it
	waiters map[*waiter]struct{}
}

// waiter is one held request. Each key it names wakes it when the key's
// state changes, so a poll wakes only the requests it concerns, and an
// idle held request costs no CPU at all.
type waiter struct{ wake chan struct{} }

// NewServer returns a server; Run starts its polling.
func NewServer(o ServerOptions) *Server {
	if o.Interval <= 0 {
		o.Interval = DefaultServerInterval
	}
	if o.MaxClients <= 0 {
		o.MaxClients = DefaultMaxClients
	}
	if o.MaxRefs <= 0 {
		o.MaxRefs = DefaultMaxRefs
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Rand == nil {
		o.Rand = rand.Float64
	}
	log := o.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	served := make(map[string]bool, len(o.Regions))
	var regions []string
	for _, r := range o.Regions {
		if !served[r] {
			served[r] = true
			regions = append(regions, r)
		}
	}
	var tokens []Token
	for _, t := range o.Tokens {
		if t.Set() {
			tokens = append(tokens, t)
		}
	}
	return &Server{
		o: o, log: log.With("component", "feed"), m: metrics.NewFeedServer(o.Registerer),
		served: served, regions: strings.Join(regions, ","),
		tokens: tokens, equal: subtle.ConstantTimeCompare,
		interval: o.Interval, current: o.Interval,
		kick: make(chan struct{}, 1), stopped: make(chan struct{}),
		entries: map[string]*entry{}, pending: map[string]bool{},
	}
}

// Handler serves Path.
func (s *Server) Handler() http.Handler { return http.HandlerFunc(s.serveHTTP) }

// httpError is a rejected request: its status, reason and Retry-After.
type httpError struct {
	code  int
	msg   string
	retry time.Duration
}

func (e *httpError) Error() string { return e.msg }

func reject(code int, format string, args ...any) *httpError {
	return &httpError{code: code, msg: fmt.Sprintf(format, args...)}
}

func (s *Server) serveHTTP(w http.ResponseWriter, r *http.Request) {
	p, herr := s.read(w, r)
	if herr == nil {
		var resp *Response
		resp, herr = s.answer(r.Context(), p)
		if resp != nil {
			s.write(w, http.StatusOK, Encode(resp))
			return
		}
	}
	if herr == nil {
		return // the client went away while held
	}
	switch herr.code {
	case http.StatusMethodNotAllowed:
		w.Header().Set("Allow", http.MethodPost)
	case http.StatusUnauthorized:
		w.Header().Set("WWW-Authenticate", "Bearer")
	}
	if herr.retry > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(int(herr.retry/time.Second)))
	}
	s.write(w, herr.code, Encode(ErrorBody{Error: herr.msg}))
}

func (s *Server) write(w http.ResponseWriter, code int, body []byte) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_, _ = w.Write(append(body, '\n'))
	s.m.Answered(code)
}

// read checks everything about a request but its references' capacity.
func (s *Server) read(w http.ResponseWriter, r *http.Request) (parsed, *httpError) {
	if r.URL.Path != Path {
		return parsed{}, reject(http.StatusNotFound, "no such path %q: the feed serves POST %s", r.URL.Path, Path)
	}
	// Before anything else is read or tracked, and not logged: a scanner
	// would flood the log. The answer says neither the token nor what was
	// sent.
	if len(s.tokens) > 0 {
		cred, ok := bearer(r.Header)
		switch {
		case !ok:
			return parsed{}, reject(http.StatusUnauthorized, "no token: this feed requires one; set "+TokenEnv+" on the agent to the watcher's token (sent as Authorization: Bearer)")
		case !accepts(s.tokens, cred, s.equal):
			return parsed{}, reject(http.StatusUnauthorized, "wrong token: set "+TokenEnv+" on the agent to the watcher's token (sent as Authorization: Bearer)")
		}
	}
	if r.Method != http.MethodPost {
		return parsed{}, reject(http.StatusMethodNotAllowed, "method %s: the feed takes POST %s", r.Method, Path)
	}
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		return parsed{}, reject(http.StatusUnsupportedMediaType, "content type %q: the feed takes application/json", r.Header.Get("Content-Type"))
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBodyBytes))
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &tooBig):
		return parsed{}, reject(http.StatusRequestEntityTooLarge, "body over %d bytes", MaxBodyBytes)
	case err != nil:
		return parsed{}, reject(http.StatusBadRequest, "reading body: %v", err)
	}
	p, err := parseRequest(body, s.serves)
	if err != nil {
		return parsed{}, reject(http.StatusBadRequest, "%v", err)
	}
	// Counted, not logged: a client that asks about another region does
	// so at every request, and a line each time would flood the log.
	s.m.Refused(p.refused)
	return p, nil
}

// serves reports whether the server tracks references in region.
func (s *Server) serves(region string) bool { return s.served[region] }

// notServed is a refused ref's error.
func (s *Server) notServed(region string) string {
	if s.regions == "" {
		return fmt.Sprintf("region %s is not served by this feed (it serves no region)", region)
	}
	return fmt.Sprintf("region %s is not served by this feed (--feed-regions %s)", region, s.regions)
}

// answer admits a parsed request, then answers it at once or holds it. A
// nil response with a nil error means the client went away.
func (s *Server) answer(ctx context.Context, p parsed) (*Response, *httpError) {
	now := s.o.Now()
	s.mu.Lock()
	due := p.wait == 0 || s.outdatedLocked(p) || s.stopping()
	if !due && s.held >= s.o.MaxClients {
		s.mu.Unlock()
		return nil, &httpError{code: http.StatusServiceUnavailable, retry: retryClients,
			msg: fmt.Sprintf("the feed holds %d requests, its limit: poll AWS directly for now", s.o.MaxClients)}
	}
	fresh := 0
	for _, k := range p.keys {
		if s.entries[k.key] == nil {
			fresh++
		}
	}
	if len(s.entries)+fresh > s.o.MaxRefs {
		s.mu.Unlock()
		return nil, &httpError{code: http.StatusServiceUnavailable, retry: retryRefs,
			msg: fmt.Sprintf("the feed would track %d references, over its limit of %d: poll AWS directly for now", len(s.entries)+fresh, s.o.MaxRefs)}
	}
	kick := s.trackLocked(p, now)
	if due {
		resp := s.responseLocked(p, now)
		s.mu.Unlock()
		s.kickIf(kick)
		return resp, nil
	}
	w := &waiter{wake: make(chan struct{}, 1)}
	for _, k := range p.keys {
		s.entries[k.key].waiters[w] = struct{}{}
	}
	s.held++
	s.m.SetHeld(s.held)
	s.mu.Unlock()
	s.kickIf(kick)

	t := time.NewTimer(p.wait)
	gone := false
	select {
	case <-w.wake:
	case <-t.C:
	case <-s.stopped:
	case <-ctx.Done():
		gone = true
	}
	t.Stop()
	now = s.o.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, k := range p.keys {
		if e := s.entries[k.key]; e != nil {
			delete(e.waiters, w)
			e.askedAt = now
		}
	}
	s.held--
	s.m.SetHeld(s.held)
	if gone {
		return nil, nil
	}
	return s.responseLocked(p, now), nil
}

func (s *Server) stopping() bool {
	select {
	case <-s.stopped:
		return true
	default:
		return false
	}
}

func (s *Server) kickIf(kick bool) {
	if !kick {
		return
	}
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// knownLocked is the version k resolves to as far as the feed knows, whether
// it tracks it yet or not (a pin needs no read).
func (s *Server) knownLocked(k parsedKey) (string, bool) {
	if e := s.entries[k.key]; e != nil {
		return e.version, e.read && e.err == ""
	}
	if fetch.Pinned(k.ref) {
		return pin(k.ref), true
	}
	return "", false
}

// outdatedLocked reports whether the request holds a version other than a
// known one: it is answered at once.
func (s *Server) outdatedLocked(p parsed) bool {
	for _, r := range p.refs {
		if r.refused != "" {
			continue // nothing to know: its error is the same at every request
		}
		if v, ok := s.knownLocked(p.keys[r.key]); ok && v != r.have {
			return true
		}
	}
	return false
}

// trackLocked starts tracking the request's new keys and marks all of
// them asked for now. It reports whether some key waits for a first poll.
func (s *Server) trackLocked(p parsed, now time.Time) (kick bool) {
	for _, k := range p.keys {
		e := s.entries[k.key]
		if e == nil {
			e = &entry{ref: k.ref, waiters: map[*waiter]struct{}{}}
			if fetch.Pinned(k.ref) {
				e.pinned, e.read, e.version, e.readAt = true, true, pin(k.ref), now
			} else {
				s.pending[k.key] = true
				kick = true
			}
			s.entries[k.key] = e
		}
		e.askedAt = now
	}
	s.m.SetTracked(len(s.entries))
	return kick
}

// pin is the version a pinned reference names.
func pin(r fetch.Ref) string {
	if r.Service == fetch.ParameterStore {
		return r.Selector
	}
	return r.VersionID
}

func (s *Server) responseLocked(p parsed, now time.Time) *Response {
	resp := &Response{Refs: make(map[string]RefState, len(p.refs)), Changed: []string{}, Interval: s.current.String()}
	for _, r := range p.refs {
		if r.refused != "" {
			resp.Refs[r.valueFrom] = RefState{Error: s.notServed(r.refused)}
			continue
		}
		e := s.entries[r.key]
		var st RefState
		if e != nil {
			st.Error = e.err
			if e.read && e.err == "" {
				st.Version = e.version
				if !e.pinned {
					st.Age = max(now.Sub(e.readAt), 0).Seconds()
				}
				st.Splay = e.splay
			}
		}
		resp.Refs[r.valueFrom] = st
		if st.Version != "" && st.Version != r.have {
			resp.Changed = append(resp.Changed, r.valueFrom)
		}
	}
	sort.Strings(resp.Changed)
	return resp
}

// Run polls the tracked references until ctx ends: all of them every
// interval, and those first asked for or notified within coalesceDelay.
// When it returns, held requests are answered with the current view (and
// new ones at once), so that an http.Server.Shutdown after it is quick and
// clients move on to another watcher.
func (s *Server) Run(ctx context.Context) error {
	defer s.stopOnce.Do(func() { close(s.stopped) })
	sched := refresh.NewSchedule(s.interval, s.o.Jitter, s.o.Rand)
	full := time.NewTimer(sched.Next(refresh.Succeeded))
	defer full.Stop()
	var soon <-chan time.Time
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-s.kick:
			if soon == nil {
				soon = time.After(coalesceDelay)
			}
		case <-soon:
			soon = nil
			if s.poll(ctx, s.takePending()) == refresh.Throttled {
				sched.Next(refresh.Throttled) // slows the next full polls
				s.setInterval(sched.Interval())
			}
		case <-full.C:
			s.dropIdle()
			o := s.poll(ctx, s.takeAll())
			full.Reset(sched.Next(o))
			s.setInterval(sched.Interval())
		}
	}
}

func (s *Server) setInterval(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.current = d
}

func (s *Server) takePending() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	keys := make([]string, 0, len(s.pending))
	for k := range s.pending {
		keys = append(keys, k)
	}
	clear(s.pending)
	return keys
}

// takeAll is every key a full poll reads; pending keys are among them.
func (s *Server) takeAll() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	keys := make([]string, 0, len(s.entries))
	for k, e := range s.entries {
		if !e.pinned {
			keys = append(keys, k)
		}
	}
	clear(s.pending)
	return keys
}

// dropIdle forgets the keys no request named for IdleAfter and none holds.
func (s *Server) dropIdle() {
	now := s.o.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	for k, e := range s.entries {
		if len(e.waiters) == 0 && now.Sub(e.askedAt) >= IdleAfter {
			delete(s.entries, k)
			delete(s.pending, k)
		}
	}
	s.m.SetTracked(len(s.entries))
}

// cycleTimeout bounds one poll, so that a hung call cannot stop polling.
func (s *Server) cycleTimeout() time.Duration {
	return min(max(s.interval/2, 10*time.Second), time.Minute)
}

// poll reads keys' versions with one Versions call and wakes the requests
// held on the keys whose state changed.
func (s *Server) poll(ctx context.Context, keys []string) refresh.Outcome {
	s.mu.Lock()
	reqs := make([]fetch.Request, 0, len(keys))
	for _, k := range keys {
		if e := s.entries[k]; e != nil && !e.pinned {
			reqs = append(reqs, fetch.Request{Name: k, Ref: e.ref})
		}
	}
	s.mu.Unlock()
	if len(reqs) == 0 {
		return refresh.Succeeded
	}
	cctx, cancel := context.WithTimeout(ctx, s.cycleTimeout())
	vs, err := s.o.Source.Versions(cctx, reqs)
	cancel()
	if ctx.Err() != nil {
		return refresh.Succeeded // shutting down: nothing to record
	}
	failed := map[string]*fetch.Error{}
	var other error // not about one key: it is about every key
	for _, e := range fetch.Errors(err) {
		var fe *fetch.Error
		if errors.As(e, &fe) {
			failed[fe.Name] = fe
		} else {
			other = e
		}
	}
	now := s.o.Now()
	o := refresh.Succeeded
	var transient []string
	s.mu.Lock()
	for _, r := range reqs {
		e := s.entries[r.Name]
		if e == nil {
			continue // cannot happen: only Run drops keys
		}
		var why, code string
		v, ok := vs[r.Name]
		switch fe := failed[r.Name]; {
		case fe != nil:
			why = refError(fe)
			switch {
			case fe.Code == "ThrottlingException" || fe.Code == "TooManyRequestsException":
				o = refresh.Throttled
				code = fe.Code
			case fe.Class() == fetch.Transient:
				if o != refresh.Throttled {
					o = refresh.Failed
				}
				code = fe.Code
			}
		case ok:
		case other != nil:
			why = "poll failed: " + other.Error()
			if o != refresh.Throttled {
				o = refresh.Failed
			}
			code = "Unknown"
		default:
			// An optional request that is missing: we never make one.
			why = "no answer for this reference"
		}
		if code != "" {
			transient = append(transient, code)
		}
		e.failing = code
		if code != "" && e.read && e.err == "" {
			// Throttled, 5xx, network: keep the last version, aging. Its
			// clients stay covered until the age passes their interval,
			// so a brief throttle of the feed's poll does not send the
			// whole fleet to poll the same throttled API.
			continue
		}
		s.settleLocked(e, v.ID, why, now)
	}
	// A poll of some keys (new ones, notified ones) says nothing of the
	// others: those still failing keep the feed's problem open.
	n := len(reqs)
	if len(reqs) < len(s.entries) {
		n = 0
		polled := make(map[string]bool, len(reqs))
		for _, r := range reqs {
			polled[r.Name] = true
		}
		for k, e := range s.entries {
			if e.pinned {
				continue
			}
			n++
			if e.failing != "" && !polled[k] {
				transient = append(transient, e.failing)
			}
		}
	}
	if len(transient) > 0 && s.failedAt.IsZero() {
		s.failedAt = now
	} else if len(transient) == 0 {
		s.failedAt = time.Time{}
	}
	failedAt := s.failedAt
	s.mu.Unlock()
	s.report(n, transient, failedAt)
	return o
}

// settleLocked records one key's read (why == "") or failure and wakes
// its held requests if its state changed: a first read, a new version, a
// read that starts or stops failing.
func (s *Server) settleLocked(e *entry, version, why string, now time.Time) {
	changed := !e.read || (e.err == "") != (why == "")
	if why == "" {
		if e.read && e.err == "" && e.version != version {
			changed = true
			s.m.VersionChanged()
			// Every held request naming it is told now.
			e.splay = SplayFor(e.ref.Service, len(e.waiters))
		}
		e.version, e.readAt = version, now
	} else {
		e.version = ""
	}
	e.read, e.err = true, why
	if !changed {
		return
	}
	for w := range e.waiters {
		select {
		case w.wake <- struct{}{}:
		default:
		}
	}
}

// refError is what a client is told of a failed read: the AWS error code
// and message, without the name the server gave the request.
func refError(e *fetch.Error) string {
	msg := e.Error()
	if _, rest, ok := strings.Cut(msg, "): "); ok && strings.HasPrefix(msg, "secret "+e.Name+" (") {
		return rest
	}
	return msg
}

// report makes failing polls visible: a /readyz problem while AWS fails
// or throttles. A reference that does not exist is the asking client's
// problem, not the feed's: it fails that ref only.
func (s *Server) report(n int, transient []string, since time.Time) {
	if len(transient) == 0 {
		if s.o.Status != nil {
			s.o.Status.Resolved(statusKey)
		}
		return
	}
	detail := fmt.Sprintf("change feed polls failing: %d of %d references (%s)", len(transient), n, transient[0])
	s.log.Warn("feed poll failed", "failed", len(transient), "refs", n, "code", transient[0])
	if s.o.Status != nil {
		s.o.Status.Problem(statusKey, detail, since)
	}
}

// Notify is a change event for a parameter or secret (a name or ARN) in a
// region: the references that name it are polled now, not at the next
// interval.
func (s *Server) Notify(region, id string) {
	t := parseTarget(region, id)
	s.mu.Lock()
	n := 0
	for k, e := range s.entries {
		if !e.pinned && t.names(e.ref) {
			s.pending[k] = true
			n++
		}
	}
	s.mu.Unlock()
	s.kickIf(n > 0)
}
