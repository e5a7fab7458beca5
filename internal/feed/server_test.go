package feed

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ecs-secrets-agent/ecs-secrets-agent/internal/fetch"
	"github.com/ecs-secrets-agent/ecs-secrets-agent/internal/status"
)

// fakeSource is a Versioner over versions the test sets. It counts calls
// and the keys each asked for, and fails keys with the codes set.
type fakeSource struct {
	mu       sync.Mutex
	versions map[string]string // by key
	fail     map[string]string // key → AWS error code
	calls    [][]string        // the keys of each call, sorted
}

func newSource() *fakeSource {
	return &fakeSource{versions: map[string]string{}, fail: map[string]string{}}
}

func (f *fakeSource) set(key, version string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.versions[key] = version
}

func (f *fakeSource) setFail(key, code string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if code == "" {
		delete(f.fail, key)
	} else {
		f.fail[key] = code
	}
}

func (f *fakeSource) Versions(_ context.Context, reqs []fetch.Request) (map[string]fetch.Version, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := map[string]fetch.Version{}
	var keys []string
	var errs []error
	for _, r := range reqs {
		keys = append(keys, r.Name)
		if fetch.Pinned(r.Ref) {
			panic("a pinned reference was polled: " + r.Name)
		}
		if code := f.fail[r.Name]; code != "" {
			errs = append(errs, &fetch.Error{Name: r.Name, Ref: r.Ref, Region: r.Ref.Region, Code: code, Op: "GetParameters", Err: errors.New("aws says no")})
			continue
		}
		v, ok := f.versions[r.Name]
		if !ok {
			errs = append(errs, &fetch.Error{Name: r.Name, Ref: r.Ref, Region: r.Ref.Region, Code: "ParameterNotFound", Op: "GetParameters", Err: errors.New("not found")})
			continue
		}
		out[r.Name] = fetch.Version{ID: v}
	}
	slices.Sort(keys)
	f.calls = append(f.calls, keys)
	return out, errors.Join(errs...)
}

func (f *fakeSource) callLog() [][]string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.calls)
}

// Keys of the references the tests use.
const (
	paramRef = "/prod/api/key"
	paramKey = "ssm eu-west-1 /prod/api/key"
	dbARN    = "arn:aws:secretsmanager:eu-west-1:111122223333:secret:db-AbCdEf"
	dbKey    = "secretsmanager eu-west-1 " + dbARN + " AWSCURRENT "
)

// harness is a Server polling a fakeSource, inside a synctest bubble.
type harness struct {
	t   *testing.T
	s   *Server
	src *fakeSource
	reg *prometheus.Registry
	st  *status.Status
}

// start runs a server until the bubble's test function returns.
func start(t *testing.T, o ServerOptions) *harness {
	h := &harness{t: t, src: newSource(), reg: prometheus.NewRegistry(), st: status.New(time.Minute, nil)}
	h.st.Rendered()
	if o.Source == nil {
		o.Source = h.src
	}
	if o.Interval == 0 {
		o.Interval = time.Minute
	}
	if o.Regions == nil {
		o.Regions = []string{"eu-west-1"} // the tests' own
	}
	o.Registerer, o.Status = h.reg, h.st
	o.Rand = func() float64 { return 0.5 }
	h.s = NewServer(o)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- h.s.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return h
}

type answer struct {
	code int
	body string
	hdr  http.Header
}

// ask sends a request with the given body and waits for its answer.
func (h *harness) ask(body string) answer {
	return <-h.askAsync(context.Background(), body)
}

func (h *harness) askAsync(ctx context.Context, body string) <-chan answer {
	req := httptest.NewRequestWithContext(ctx, http.MethodPost, Path, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	return h.do(req)
}

func (h *harness) do(req *http.Request) <-chan answer {
	ch := make(chan answer, 1)
	go func() {
		rec := httptest.NewRecorder()
		h.s.Handler().ServeHTTP(rec, req)
		ch <- answer{rec.Code, rec.Body.String(), rec.Header()}
	}()
	return ch
}

func (h *harness) tracked() int {
	h.s.mu.Lock()
	defer h.s.mu.Unlock()
	return len(h.s.entries)
}

func (h *harness) held() int {
	h.s.mu.Lock()
	defer h.s.mu.Unlock()
	return h.s.held
}

// metric is the value of an unlabelled metric of the server.
func (h *harness) metric(name string) float64 {
	h.t.Helper()
	mfs, err := h.reg.Gather()
	if err != nil {
		h.t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			m := mf.GetMetric()[0]
			if c := m.GetCounter(); c != nil {
				return c.GetValue()
			}
			return m.GetGauge().GetValue()
		}
	}
	h.t.Fatalf("no metric %s", name)
	return 0
}

func want(t *testing.T, got answer, code int, body string) {
	t.Helper()
	if got.code != code || got.body != body+"\n" {
		t.Errorf("answer %d %s, want %d %s", got.code, got.body, code, body)
	}
}

// pending reports whether ch has no answer yet, once everything in the
// bubble has settled.
func pending(ch <-chan answer) bool {
	synctest.Wait()
	select {
	case a := <-ch:
		panic(fmt.Sprintf("answered early: %d %s", a.code, a.body))
	default:
		return true
	}
}

func TestFirstAskIsPolledPromptlyAndAnswered(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := start(t, ServerOptions{})
		h.src.set(paramKey, "3")
		t0 := time.Now()
		// The client holds nothing yet: the first read is its change.
		a := h.ask(`{"region":"eu-west-1","refs":{"/prod/api/key":""}}`)
		want(t, a, 200, `{"refs":{"/prod/api/key":{"version":"3","age":0}},"changed":["/prod/api/key"],"interval":"1m0s"}`)
		if d := time.Since(t0); d != coalesceDelay {
			t.Errorf("answered after %s, want the coalescing delay %s", d, coalesceDelay)
		}
		if got := h.src.callLog(); len(got) != 1 {
			t.Errorf("Versions calls %v, want 1", got)
		}
	})
}

func TestHeldAnsweredOnChangeAndOnTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := start(t, ServerOptions{})
		h.src.set(paramKey, "3")
		h.ask(`{"region":"eu-west-1","wait":"0s","refs":{"/prod/api/key":""}}`) // tracked, not yet read
		time.Sleep(time.Second)                                                 // past the prompt poll

		// Up to date: held until the wait runs out, then told the same.
		t0 := time.Now()
		a := h.ask(`{"region":"eu-west-1","wait":"30s","refs":{"/prod/api/key":"3"}}`)
		want(t, a, 200, `{"refs":{"/prod/api/key":{"version":"3","age":30.8}},"changed":[],"interval":"1m0s"}`)
		if d := time.Since(t0); d != 30*time.Second {
			t.Errorf("held %s, want the 30s wait", d)
		}

		// Held across polls that change nothing, answered by the one that does.
		ch := h.askAsync(context.Background(), `{"region":"eu-west-1","wait":"5m","refs":{"/prod/api/key":"3"}}`)
		time.Sleep(30 * time.Second) // past the first full poll, at 1m
		pending(ch)
		h.src.set(paramKey, "4")
		time.Sleep(time.Minute)
		select {
		case a := <-ch:
			// One client told: its fetch spread over 1/20 s.
			want(t, a, 200, `{"refs":{"/prod/api/key":{"version":"4","age":0,"splay":0.05}},"changed":["/prod/api/key"],"interval":"1m0s"}`)
		default:
			t.Fatal("not answered after the poll that saw the change")
		}
		if n := h.metric("ecs_secrets_agent_feed_versions_changed_total"); n != 1 {
			t.Errorf("versions changed %v, want 1", n)
		}
		if h.held() != 0 {
			t.Errorf("%d held after the answer", h.held())
		}
	})
}

func TestWaitZeroAnswersAtOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := start(t, ServerOptions{})
		h.src.set(paramKey, "3")
		t0 := time.Now()
		a := h.ask(`{"region":"eu-west-1","wait":"0s","refs":{"/prod/api/key":""}}`)
		// Not read yet: no version, no change, and no wait.
		want(t, a, 200, `{"refs":{"/prod/api/key":{"age":0}},"changed":[],"interval":"1m0s"}`)
		if time.Since(t0) != 0 {
			t.Errorf("wait 0s took %s", time.Since(t0))
		}
	})
}

// A client that comes back with the versions it holds misses nothing: not
// a change made while it was away, not one made between its requests.
func TestReconnectMissesNoChange(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := start(t, ServerOptions{})
		h.src.set(paramKey, "3")
		h.src.set(dbKey, "v1")
		body := func(p, d string) string {
			return `{"region":"eu-west-1","wait":"10s","refs":{"/prod/api/key":"` + p + `","` + dbARN + `:password::":"` + d + `"}}`
		}
		a := h.ask(body("", ""))
		want(t, a, 200, `{"refs":{"/prod/api/key":{"version":"3","age":0},"`+dbARN+`:password::":{"version":"v1","age":0}},"changed":["/prod/api/key","`+dbARN+`:password::"],"interval":"1m0s"}`)

		// Away for two intervals; the secret changes meanwhile.
		time.Sleep(90 * time.Second)
		h.src.set(dbKey, "v2")
		time.Sleep(40 * time.Second)
		t0 := time.Now()
		a = h.ask(body("3", "v1"))
		want(t, a, 200, `{"refs":{"/prod/api/key":{"version":"3","age":10.2},"`+dbARN+`:password::":{"version":"v2","age":10.2}},"changed":["`+dbARN+`:password::"],"interval":"1m0s"}`)
		if time.Since(t0) != 0 {
			t.Error("a client behind was held")
		}
		// The same request again, to a restarted server that has not
		// read the secret yet: told as soon as it reads it.
		h2 := start(t, ServerOptions{Source: h.src})
		a = <-h2.askAsync(context.Background(), body("3", "v1"))
		want(t, a, 200, `{"refs":{"/prod/api/key":{"version":"3","age":0},"`+dbARN+`:password::":{"version":"v2","age":0}},"changed":["`+dbARN+`:password::"],"interval":"1m0s"}`)
	})
}

// Thirty clients asking about the same references, some through other
// JSON keys of one secret, cost one read of each key per poll.
func TestEachKeyPolledOnceWhateverTheClients(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := start(t, ServerOptions{})
		h.src.set(paramKey, "3")
		h.src.set(dbKey, "v1")
		// Tracked and read first: a first read would answer them.
		h.ask(`{"region":"eu-west-1","refs":{"/prod/api/key":"","` + dbARN + `:user::":""}}`)
		var chans []<-chan answer
		for i := range 30 {
			key := []string{"user", "password", "host"}[i%3]
			chans = append(chans, h.askAsync(context.Background(),
				fmt.Sprintf(`{"region":"eu-west-1","wait":"5m","refs":{"/prod/api/key":"3","%s:%s::":"v1"}}`, dbARN, key)))
		}
		synctest.Wait()
		if h.held() != 30 {
			t.Fatalf("%d held, want 30", h.held())
		}
		// Three full polls find what they hold and answer none.
		time.Sleep(3*time.Minute + time.Second)
		for _, ch := range chans {
			pending(ch)
		}
		wantCalls := [][]string{{dbKey, paramKey}, {dbKey, paramKey}, {dbKey, paramKey}, {dbKey, paramKey}}
		if got := h.src.callLog(); !slices.EqualFunc(got, wantCalls, slices.Equal) {
			t.Errorf("Versions calls %q, want %q", got, wantCalls)
		}
		h.src.set(dbKey, "v2")
		time.Sleep(time.Minute)
		for i, ch := range chans {
			a := <-ch
			key := []string{"user", "password", "host"}[i%3]
			if want := `"changed":["` + dbARN + ":" + key + `::"]`; a.code != 200 || !strings.Contains(a.body, want) {
				t.Errorf("client %d: %d %s, want %s", i, a.code, a.body, want)
			}
		}
		if got := len(h.src.callLog()); got != 5 {
			t.Errorf("%d Versions calls, want 5", got)
		}
		if h.tracked() != 2 {
			t.Errorf("%d keys tracked, want 2", h.tracked())
		}
	})
}

func TestPerRefErrors(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := start(t, ServerOptions{})
		h.src.set(dbKey, "v1")
		h.src.setFail(paramKey, "AccessDeniedException")
		body := `{"region":"eu-west-1","wait":"5m","refs":{"/prod/api/key":"3","` + dbARN + `":"v1"}}`
		a := h.ask(body)
		// The read that failed is a change of state, told at once; the
		// client polls that ref itself.
		wantErr := `AccessDeniedException: access denied: the task role needs ssm:GetParameters on this resource (and kms:Decrypt on its key if it uses a customer managed key)`
		want(t, a, 200, `{"refs":{"/prod/api/key":{"age":0,"error":"`+wantErr+`"},"`+dbARN+`":{"version":"v1","age":0}},"changed":[],"interval":"1m0s"}`)
		// A client's bad reference does not make the feed unready.
		if ok, detail := h.st.Ready(); !ok || detail != "" {
			t.Errorf("ready %v %q after a permanent error", ok, detail)
		}
		// Held while the error persists, answered when it stops.
		ch := h.askAsync(context.Background(), body)
		time.Sleep(time.Minute)
		pending(ch)
		h.src.setFail(paramKey, "")
		h.src.set(paramKey, "3")
		time.Sleep(time.Minute)
		want(t, <-ch, 200, `{"refs":{"/prod/api/key":{"version":"3","age":0},"`+dbARN+`":{"version":"v1","age":0}},"changed":[],"interval":"1m0s"}`)

		// Throttling: every key fails, the feed is a problem for
		// /readyz, and polling slows down.
		h.src.setFail(paramKey, "ThrottlingException")
		h.src.setFail(dbKey, "ThrottlingException")
		time.Sleep(time.Minute)
		if _, detail := h.st.Ready(); !strings.Contains(detail, "change feed polls failing: 2 of 2 references (ThrottlingException)") {
			t.Errorf("readyz detail %q", detail)
		}
		a = h.ask(`{"region":"eu-west-1","wait":"0s","refs":{"/prod/api/key":"3"}}`)
		// The last version stays, aging, and no error: its clients stay
		// covered until the age passes their interval, instead of all
		// polling the throttled API at their next tick.
		if !strings.Contains(a.body, `"interval":"2m0s"`) || !strings.Contains(a.body, `{"/prod/api/key":{"version":"3","age":60`) || strings.Contains(a.body, "error") {
			t.Errorf("after throttling: %s", a.body)
		}
		n := len(h.src.callLog())
		time.Sleep(time.Minute + time.Second)
		if got := len(h.src.callLog()); got != n {
			t.Errorf("%d polls a minute after a throttle, want none (interval doubled)", got-n)
		}
		h.src.setFail(paramKey, "")
		h.src.setFail(dbKey, "")
		time.Sleep(time.Minute)
		if ok, detail := h.st.Ready(); !ok || detail != "" {
			t.Errorf("ready %v %q after polls recovered", ok, detail)
		}
	})
}

func TestPinnedNeverPolled(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := start(t, ServerOptions{})
		pinnedSecret := dbARN + "::" + ":" + "a1b2c3d4-5678-90ab-cdef-111111111111"
		a := h.ask(`{"region":"eu-west-1","refs":{"/prod/api/key:7":"","` + pinnedSecret + `":""}}`)
		want(t, a, 200, `{"refs":{"/prod/api/key:7":{"version":"7","age":0},"`+pinnedSecret+`":{"version":"a1b2c3d4-5678-90ab-cdef-111111111111","age":0}},"changed":["/prod/api/key:7","`+pinnedSecret+`"],"interval":"1m0s"}`)
		time.Sleep(5 * time.Minute)
		if got := h.src.callLog(); len(got) != 0 {
			t.Errorf("Versions calls %q for pinned refs", got)
		}
	})
}

func TestNotifyPollsAtOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := start(t, ServerOptions{})
		h.src.set(paramKey, "3")
		h.src.set(dbKey, "v1")
		h.ask(`{"region":"eu-west-1","refs":{"/prod/api/key":"","` + dbARN + `:password::":""}}`)
		ch := h.askAsync(context.Background(), `{"region":"eu-west-1","refs":{"`+dbARN+`:password::":"v1"}}`)
		time.Sleep(10 * time.Second)
		h.src.set(dbKey, "v2")
		t0 := time.Now()
		h.s.Notify("eu-west-1", "db") // a secret by its name: CloudTrail's secretId
		a := <-ch
		if d := time.Since(t0); d != coalesceDelay {
			t.Errorf("told %s after the event, want %s", d, coalesceDelay)
		}
		want(t, a, 200, `{"refs":{"`+dbARN+`:password::":{"version":"v2","age":0}},"changed":["`+dbARN+`:password::"],"interval":"1m0s"}`)
		// Only the secret named was polled; an event for nothing tracked
		// or another region polls nothing.
		h.s.Notify("eu-west-1", "/other")
		h.s.Notify("us-east-1", "/prod/api/key")
		time.Sleep(time.Second)
		wantCalls := [][]string{{dbKey, paramKey}, {dbKey}}
		if got := h.src.callLog(); !slices.EqualFunc(got, wantCalls, slices.Equal) {
			t.Errorf("Versions calls %q, want %q", got, wantCalls)
		}
	})
}

func TestIdleKeysDropped(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := start(t, ServerOptions{})
		h.src.set(paramKey, "3")
		h.src.set(dbKey, "v1")
		h.ask(`{"region":"eu-west-1","wait":"0s","refs":{"/prod/api/key":"","` + dbARN + `":""}}`)
		// One key is asked about again, by a request held across the
		// limit: it stays; the other goes.
		time.Sleep(8*time.Minute + time.Second)
		ch := h.askAsync(context.Background(), `{"region":"eu-west-1","wait":"5m","refs":{"/prod/api/key":"3"}}`)
		time.Sleep(4*time.Minute + time.Second)
		if h.tracked() != 1 {
			t.Errorf("%d keys tracked 12 minutes on, want 1", h.tracked())
		}
		<-ch
		n := len(h.src.callLog())
		last := h.src.callLog()[n-1]
		if !slices.Equal(last, []string{paramKey}) {
			t.Errorf("last poll %q, want only the key still asked for", last)
		}
		time.Sleep(11 * time.Minute)
		if h.tracked() != 0 {
			t.Errorf("%d keys tracked after 10 idle minutes, want 0", h.tracked())
		}
		n = len(h.src.callLog())
		time.Sleep(5 * time.Minute)
		if got := len(h.src.callLog()); got != n {
			t.Errorf("%d polls with nothing tracked", got-n)
		}
		if v := h.metric("ecs_secrets_agent_feed_tracked_references"); v != 0 {
			t.Errorf("tracked gauge %v, want 0", v)
		}
	})
}

func TestClientGoneReleasesItsHold(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := start(t, ServerOptions{})
		h.src.set(paramKey, "3")
		h.ask(`{"region":"eu-west-1","refs":{"/prod/api/key":""}}`)
		ctx, cancel := context.WithCancel(context.Background())
		ch := h.askAsync(ctx, `{"region":"eu-west-1","refs":{"/prod/api/key":"3"}}`)
		synctest.Wait()
		if h.held() != 1 {
			t.Fatalf("%d held", h.held())
		}
		cancel()
		a := <-ch
		if a.body != "" || h.held() != 0 {
			t.Errorf("after the client left: body %q, %d held", a.body, h.held())
		}
	})
}

// When Run ends (SIGTERM), held requests are answered at once so that the
// HTTP server can shut down and clients move to another watcher.
func TestStopAnswersHeldRequests(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		src := newSource()
		src.set(paramKey, "3")
		s := NewServer(ServerOptions{Source: src, Regions: []string{"eu-west-1"}})
		h := &harness{t: t, s: s, src: src}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error)
		go func() { done <- s.Run(ctx) }()
		h.ask(`{"region":"eu-west-1","refs":{"/prod/api/key":""}}`)
		ch := h.askAsync(context.Background(), `{"region":"eu-west-1","wait":"5m","refs":{"/prod/api/key":"3"}}`)
		pending(ch)
		t0 := time.Now()
		cancel()
		<-done
		want(t, <-ch, 200, `{"refs":{"/prod/api/key":{"version":"3","age":0}},"changed":[],"interval":"1m0s"}`)
		if time.Since(t0) != 0 {
			t.Errorf("held %s after Run ended", time.Since(t0))
		}
		want(t, h.ask(`{"region":"eu-west-1","wait":"5m","refs":{"/prod/api/key":"3"}}`), 200,
			`{"refs":{"/prod/api/key":{"version":"3","age":0}},"changed":[],"interval":"1m0s"}`)
	})
}

// The feed tells every held client of a change at once; their value
// fetches share one account quota. Each answer carries the splay that
// spreads them to ParameterStoreFetchRate (Secrets Manager's rate for a
// secret), from the number of clients told.
func TestSplayGrowsWithTheClientsTold(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := start(t, ServerOptions{})
		h.src.set(paramKey, "3")
		h.src.set(dbKey, "v1")
		h.ask(`{"region":"eu-west-1","refs":{"/prod/api/key":"","` + dbARN + `":""}}`)
		var chans []<-chan answer
		for range 40 {
			chans = append(chans, h.askAsync(context.Background(),
				`{"region":"eu-west-1","wait":"5m","refs":{"/prod/api/key":"3","`+dbARN+`":"v1"}}`))
		}
		synctest.Wait()
		h.src.set(paramKey, "4")
		h.src.set(dbKey, "v2")
		time.Sleep(time.Minute)
		for i, ch := range chans {
			a := <-ch
			var r Response
			if err := json.Unmarshal([]byte(a.body), &r); err != nil {
				t.Fatal(err)
			}
			// 40 clients: 2 s at 20/s; 0.016 s at 2,500/s.
			if got := r.Refs["/prod/api/key"].Splay; got != 2 {
				t.Errorf("client %d: parameter splay %v, want 2", i, got)
			}
			if got := r.Refs[dbARN].Splay; got != 0.016 {
				t.Errorf("client %d: secret splay %v, want 0.016", i, got)
			}
		}
	})
}
