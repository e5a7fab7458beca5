package awsfake

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"time"
)

// Quota is one of an account's API rate quotas in a region, enforced the way
// AWS does: a token bucket that holds Burst tokens and refills at Rate a
// second. Each call of one of Ops takes a token; a call that finds the
// bucket empty is refused with ThrottlingException and does not reach the
// API.
type Quota struct {
	Name  string
	Ops   []string
	Rate  float64 // tokens a second: the sustained rate
	Burst float64 // bucket size: the most calls in one instant
}

// Scaled is q with its rate multiplied by k, for a simulation that runs k
// times faster than the fleet it models: the bucket refills k times faster
// and holds as many calls.
func (q Quota) Scaled(k float64) Quota {
	q.Rate *= k
	q.Ops = append([]string(nil), q.Ops...)
	return q
}

// DefaultQuotas are the default quotas of SPEC §6, per account and region.
// AWS publishes no bucket size for Parameter Store or Secrets Manager; the
// burst is one second's worth here.
func DefaultQuotas() []Quota {
	return []Quota{
		// Shared with ECS's own injection at task start.
		{Name: "ssm-get", Ops: []string{"GetParameters", "GetParameter", "GetParametersByPath"}, Rate: 40, Burst: 40},
		{Name: "secretsmanager-read", Ops: []string{"GetSecretValue", "DescribeSecret"}, Rate: 10000, Burst: 10000},
		{Name: "ecs-describe-services", Ops: []string{"DescribeServices"}, Rate: 20, Burst: 20},
		{Name: "ecs-update-service", Ops: []string{"UpdateService"}, Rate: 5, Burst: 5},
	}
}

// Throttled is the answer AWS gives a call over its quota: HTTP 400,
// awsJson's "__type" ThrottlingException, "Rate exceeded" (SSM, Secrets
// Manager and ECS alike). The SDK's standard retryer counts the code as
// throttling (retry.DefaultThrottleErrorCodes).
var Throttled = APIError{Status: http.StatusBadRequest, Code: "ThrottlingException", Message: "Rate exceeded"}

// OpCount is what a Limiter let through and refused of one operation.
type OpCount struct {
	Allowed, Throttled int
}

// Limiter serves a Fake's AWS API, on a URL of its own, behind quotas. The
// Fake's own URL stays unlimited, and the Fake counts only the calls the
// Limiter let through. Safe for concurrent use.
type Limiter struct {
	URL string // AWS endpoint base URL with quotas enforced

	f   *Fake
	srv *httptest.Server
	now func() time.Time

	mu      sync.Mutex
	byOp    map[string]*Quota
	buckets map[string]*bucket // region + " " + quota name
	counts  map[string]*OpCount
	byWho   map[string]map[string]*OpCount
	who     func(*http.Request) string
}

type bucket struct {
	tokens float64
	at     time.Time
}

// NewLimiter serves f's API behind quotas (a later quota naming the same
// operation wins). now is the bucket's clock; nil means time.Now. Close it
// before f.
func NewLimiter(f *Fake, quotas []Quota, now func() time.Time) *Limiter {
	if now == nil {
		now = time.Now
	}
	l := &Limiter{f: f, now: now, byOp: map[string]*Quota{}, buckets: map[string]*bucket{}, counts: map[string]*OpCount{},
		byWho: map[string]map[string]*OpCount{}}
	l.SetQuotas(quotas)
	l.srv = httptest.NewServer(http.HandlerFunc(l.serve))
	l.URL = l.srv.URL
	return l
}

// CountBy makes the limiter also count calls by caller: who names the
// caller of a request (from its User-Agent, say). Call it before any
// request.
func (l *Limiter) CountBy(who func(*http.Request) string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.who = who
}

// CountsOf is Counts for the calls CountBy attributed to who.
func (l *Limiter) CountsOf(who string) map[string]OpCount {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := map[string]OpCount{}
	for op, c := range l.byWho[who] {
		out[op] = *c
	}
	return out
}

// SetQuotas replaces the quotas; buckets start full again.
func (l *Limiter) SetQuotas(quotas []Quota) {
	l.mu.Lock()
	defer l.mu.Unlock()
	clear(l.byOp)
	clear(l.buckets)
	for i := range quotas {
		q := quotas[i]
		for _, op := range q.Ops {
			l.byOp[op] = &q
		}
	}
}

// Close stops serving, waiting for requests in flight.
func (l *Limiter) Close() { l.srv.Close() }

// Counts returns, by operation, the calls let through and refused since the
// last Reset.
func (l *Limiter) Counts() map[string]OpCount {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make(map[string]OpCount, len(l.counts))
	for op, c := range l.counts {
		out[op] = *c
	}
	return out
}

// Reset zeroes the counts (not the buckets).
func (l *Limiter) Reset() {
	l.mu.Lock()
	defer l.mu.Unlock()
	clear(l.counts)
	clear(l.byWho)
}

// Quotas returns the quotas by operation.
func (l *Limiter) Quotas() map[string]Quota {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := map[string]Quota{}
	for op, q := range l.byOp {
		out[op] = *q
	}
	return out
}

// allow takes a token for op in region, and counts the call.
func (l *Limiter) allow(r *http.Request, region, op string) bool {
	ok := l.take(region, op)
	l.mu.Lock()
	defer l.mu.Unlock()
	count := func(m map[string]*OpCount) {
		c := m[op]
		if c == nil {
			c = &OpCount{}
			m[op] = c
		}
		if ok {
			c.Allowed++
		} else {
			c.Throttled++
		}
	}
	count(l.counts)
	if l.who != nil {
		w := l.who(r)
		if l.byWho[w] == nil {
			l.byWho[w] = map[string]*OpCount{}
		}
		count(l.byWho[w])
	}
	return ok
}

// take takes a token from op's bucket in region, if op has a quota.
func (l *Limiter) take(region, op string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	q := l.byOp[op]
	if q == nil {
		return true
	}
	now := l.now()
	key := region + " " + q.Name
	b := l.buckets[key]
	if b == nil {
		b = &bucket{tokens: q.Burst, at: now}
		l.buckets[key] = b
	}
	if dt := now.Sub(b.at).Seconds(); dt > 0 {
		b.tokens = min(q.Burst, b.tokens+dt*q.Rate)
		b.at = now
	}
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

func (l *Limiter) serve(w http.ResponseWriter, r *http.Request) {
	_, op, _ := strings.Cut(r.Header.Get("X-Amz-Target"), ".")
	// The account's region is the one the request is signed for; a request
	// the fake would reject anyway goes through and is rejected there.
	auth, _ := parseAuthorization(r.Header.Get("Authorization"))
	if op != "" && !l.allow(r, auth.region, op) {
		e := Throttled
		writeError(w, &e)
		return
	}
	l.f.serveAPI(w, r)
}
