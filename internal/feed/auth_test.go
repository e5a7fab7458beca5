package feed

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

const (
	currentToken  = "current-token-0123456789abcdef"
	previousToken = "previous-token-0123456789abcdef"
)

func mustToken(t *testing.T, env, v string) Token {
	t.Helper()
	tok, err := ParseToken(env, v)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

const (
	noTokenBody    = `{"error":"no token: this feed requires one; set AGENT_FEED_TOKEN on the agent to the watcher's token (sent as Authorization: Bearer)"}`
	wrongTokenBody = `{"error":"wrong token: set AGENT_FEED_TOKEN on the agent to the watcher's token (sent as Authorization: Bearer)"}`
)

// A feed with a token answers only requests that carry it (or the previous
// one, while it is kept): anything else is a 401 before the body is read,
// tracks nothing and makes no AWS call.
func TestTokenRequired(t *testing.T) {
	good := `{"region":"eu-west-1","wait":"0s","refs":{"/prod/api/key":""}}`
	tests := []struct {
		name   string
		tokens []string // the server's: current, then previous
		auth   string   // the Authorization header; "" sends none
		body   string
		code   int
		want   string
	}{
		{"no header", []string{currentToken, previousToken}, "", good, 401, noTokenBody},
		{"another scheme", []string{currentToken}, "Basic " + currentToken, good, 401, noTokenBody},
		{"empty bearer", []string{currentToken}, "Bearer ", good, 401, noTokenBody},
		{"scheme alone", []string{currentToken}, "Bearer", good, 401, noTokenBody},
		{"wrong", []string{currentToken, previousToken}, "Bearer wrong-token-0123456789abcdef", good, 401, wrongTokenBody},
		{"a prefix of the token", []string{currentToken}, "Bearer " + currentToken[:20], good, 401, wrongTokenBody},
		{"the token and more", []string{currentToken}, "Bearer " + currentToken + "x", good, 401, wrongTokenBody},
		{"previous after it was dropped", []string{currentToken}, "Bearer " + previousToken, good, 401, wrongTokenBody},
		// Checked before the body: neither a malformed nor an oversized
		// body is read.
		{"no token, malformed body", []string{currentToken}, "", `{"nope`, 401, noTokenBody},
		{"no token, body over 256 KiB", []string{currentToken}, "", `{"region":"eu-west-1","refs":{"/p":"` + strings.Repeat("1", MaxBodyBytes) + `"}}`, 401, noTokenBody},
		{"no token, GET", []string{currentToken}, "", "", 401, noTokenBody},
		{"current", []string{currentToken, previousToken}, "Bearer " + currentToken, good, 200,
			`{"refs":{"/prod/api/key":{"age":0}},"changed":[],"interval":"1m0s"}`},
		{"previous, while kept", []string{currentToken, previousToken}, "Bearer " + previousToken, good, 200,
			`{"refs":{"/prod/api/key":{"age":0}},"changed":[],"interval":"1m0s"}`},
		{"scheme in lower case", []string{currentToken}, "bearer " + currentToken, good, 200,
			`{"refs":{"/prod/api/key":{"age":0}},"changed":[],"interval":"1m0s"}`},
		{"no token set: open as before", nil, "", good, 200,
			`{"refs":{"/prod/api/key":{"age":0}},"changed":[],"interval":"1m0s"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				var tokens []Token
				for i, v := range tt.tokens {
					tokens = append(tokens, mustToken(t, []string{TokenEnv, TokenPreviousEnv}[i], v))
				}
				h := start(t, ServerOptions{Tokens: tokens})
				method := http.MethodPost
				if tt.body == "" {
					method = http.MethodGet
				}
				req := httptest.NewRequest(method, Path, strings.NewReader(tt.body))
				req.Header.Set("Content-Type", "application/json")
				if tt.auth != "" {
					req.Header.Set("Authorization", tt.auth)
				}
				a := <-h.do(req)
				want(t, a, tt.code, tt.want)
				if got, want := a.hdr.Get("WWW-Authenticate"), map[bool]string{true: "Bearer"}[tt.code == 401]; got != want {
					t.Errorf("WWW-Authenticate %q, want %q", got, want)
				}
				for _, secret := range append([]string{currentToken, previousToken}, strings.TrimPrefix(tt.auth, "Bearer ")) {
					if tt.code == 401 && len(secret) >= MinTokenBytes && strings.Contains(a.body, secret) {
						t.Errorf("the 401 answer holds a token or what was sent: %s", a.body)
					}
				}
				if got := h.requests(tt.code); got != 1 {
					t.Errorf("feed_requests_total{code=\"%d\"} %v, want 1", tt.code, got)
				}
				if tt.code != 401 {
					return
				}
				if n := h.tracked(); n != 0 {
					t.Errorf("a refused request left %d keys tracked", n)
				}
				time.Sleep(2 * time.Minute)
				if got := h.src.callLog(); len(got) != 0 {
					t.Errorf("Versions calls %q after a refused request", got)
				}
			})
		})
	}
}

// The server compares SHA-256 digests with crypto/subtle, every token
// every time: the comparison sees 32 bytes whatever was sent, and does not
// stop at the first match. (Timing itself a test cannot prove; the path
// it can.)
func TestTokenComparedInConstantTime(t *testing.T) {
	s := NewServer(ServerOptions{Tokens: []Token{mustToken(t, TokenEnv, currentToken), mustToken(t, TokenPreviousEnv, previousToken)}})
	if got, want := reflect.ValueOf(s.equal).Pointer(), reflect.ValueOf(subtle.ConstantTimeCompare).Pointer(); got != want {
		t.Fatal("the server does not compare tokens with subtle.ConstantTimeCompare")
	}
	cur, prev := sha256.Sum256([]byte(currentToken)), sha256.Sum256([]byte(previousToken))
	tests := []struct {
		name, cred string
		ok         bool
	}{
		{"current", currentToken, true},
		{"previous", previousToken, true},
		{"wrong, same length", strings.Repeat("x", len(currentToken)), false},
		{"one byte", "x", false},
		{"long", strings.Repeat("x", 10000), false},
		{"prefix", currentToken[:MinTokenBytes], false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var calls [][2][]byte
			equal := func(x, y []byte) int {
				calls = append(calls, [2][]byte{x, y})
				return subtle.ConstantTimeCompare(x, y)
			}
			if got := accepts(s.tokens, tt.cred, equal); got != tt.ok {
				t.Errorf("accepts %v, want %v", got, tt.ok)
			}
			sum := sha256.Sum256([]byte(tt.cred))
			if len(calls) != 2 {
				t.Fatalf("%d comparisons, want 2: every token, no early exit", len(calls))
			}
			for i, want := range [][]byte{cur[:], prev[:]} {
				if string(calls[i][0]) != string(sum[:]) || string(calls[i][1]) != string(want) {
					t.Errorf("comparison %d is not digest against digest", i)
				}
			}
		})
	}
}

func TestParseToken(t *testing.T) {
	tests := []struct {
		name, value, err string
	}{
		{"unset", "", ""},
		{"16 bytes", "0123456789abcdef", ""},
		{"printable ASCII", `!"#$%&'()*+,-./0123456789:;<=>?@AZ[\]^_` + "`az{|}~", ""},
		{"15 bytes", "0123456789abcde", "AGENT_FEED_TOKEN: 15 bytes, want at least 16"},
		{"a space", "0123456789 abcdef", "AGENT_FEED_TOKEN: byte 11 is not printable ASCII (spaces, control and non-ASCII characters are not allowed)"},
		{"a newline at the end", "0123456789abcdef\n", "AGENT_FEED_TOKEN: byte 17 is not printable ASCII (spaces, control and non-ASCII characters are not allowed)"},
		{"a tab", "\t0123456789abcdef", "AGENT_FEED_TOKEN: byte 1 is not printable ASCII (spaces, control and non-ASCII characters are not allowed)"},
		{"DEL", "0123456789abcdef\x7f", "AGENT_FEED_TOKEN: byte 17 is not printable ASCII (spaces, control and non-ASCII characters are not allowed)"},
		{"non-ASCII", "0123456789abcdeé", "AGENT_FEED_TOKEN: byte 16 is not printable ASCII (spaces, control and non-ASCII characters are not allowed)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tok, err := ParseToken(TokenEnv, tt.value)
			got := ""
			if err != nil {
				got = err.Error()
			}
			if got != tt.err {
				t.Fatalf("error %q, want %q", got, tt.err)
			}
			if err == nil && tok.Set() != (tt.value != "") {
				t.Errorf("Set %v for %q", tok.Set(), tt.value)
			}
			if tt.value != "" && strings.Contains(got, tt.value) {
				t.Errorf("the error holds the value: %s", got)
			}
		})
	}
}

func TestTokenRedacted(t *testing.T) {
	tok := mustToken(t, TokenEnv, currentToken)
	var b strings.Builder
	for _, s := range []string{tok.String(), tok.GoString(), tok.LogValue().String()} {
		b.WriteString(s + "\n")
	}
	if got, want := b.String(), "[REDACTED]\nfeed.Token([REDACTED])\n[REDACTED]\n"; got != want {
		t.Errorf("redacted forms %q, want %q", got, want)
	}
	if got := (Token{}).String(); got != "none" {
		t.Errorf("no token prints %q", got)
	}
}

// The client sends its token; a feed that refuses it (wrong, or none
// sent) is a feed error of its own reason: the client polls directly,
// with one error line per switch that says which, and no token in it.
func TestClientTokenAgainstTheServer(t *testing.T) {
	for _, tc := range []struct {
		name, token string
		source      string // after a few answers
		errors      string
		line        string // the error line's error, "" for none
	}{
		{"right token", currentToken, "map[direct:0 feed:1]", "map[malformed:0 status:0 timeout:0 unauthorized:0 unreachable:0]", ""},
		{"previous token, kept", previousToken, "map[direct:0 feed:1]", "map[malformed:0 status:0 timeout:0 unauthorized:0 unreachable:0]", ""},
		{"wrong token", "wrong-token-0123456789abcdef", "map[direct:1 feed:0]", "map[malformed:0 status:0 timeout:0 unauthorized:4 unreachable:0]",
			"status 401: the feed refused this agent's token: AGENT_FEED_TOKEN is wrong (not one the watcher accepts)"},
		{"no token", "", "map[direct:1 feed:0]", "map[malformed:0 status:0 timeout:0 unauthorized:4 unreachable:0]",
			"status 401: the feed requires a token and AGENT_FEED_TOKEN is missing: set it on this agent"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				srv := start(t, ServerOptions{Tokens: []Token{mustToken(t, TokenEnv, currentToken), mustToken(t, TokenPreviousEnv, previousToken)}})
				srv.src.set(paramKey, "3")
				reg, logs := prometheus.NewRegistry(), &lockedBuffer{}
				var down bool
				var mu sync.Mutex
				c, err := NewClient(ClientOptions{
					URL: "http://feed.internal:9103", Region: "eu-west-1", Interval: 10 * time.Second,
					HTTP:  &http.Client{Transport: handlerTransport{srv.s.Handler(), &down, &mu}},
					Token: mustToken(t, TokenEnv, tc.token), Log: slog.New(slog.NewJSONHandler(logs, nil)),
					Registerer: reg, Rand: func() float64 { return 0.5 },
				})
				if err != nil {
					t.Fatal(err)
				}
				ctx, cancel := context.WithCancel(context.Background())
				done := make(chan struct{})
				go func() { c.Run(ctx); close(done) }()
				defer func() { cancel(); <-done }()
				reqs, have := held(t, map[string]string{"A": paramRef}, map[string]string{"A": "3"})
				c.Hold(0, reqs, have)
				time.Sleep(7 * time.Second) // 4 refused requests: at 0, 1, 2.5 and 5.5 s
				synctest.Wait()
				if got := sources(t, reg); got != tc.source {
					t.Errorf("sources %s, want %s", got, tc.source)
				}
				if got := errorCounts(t, reg); got != tc.errors {
					t.Errorf("errors %s, want %s", got, tc.errors)
				}
				if got, want := c.Covered(reqs[0], "3"), tc.line == ""; got != want {
					t.Errorf("covered %v, want %v", got, want)
				}
				var lines []string
				for _, l := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
					var e struct{ Level, Msg, Reason, Error string }
					if err := json.Unmarshal([]byte(l), &e); err != nil {
						t.Fatal(err)
					}
					if e.Level == "ERROR" {
						lines = append(lines, e.Msg+" | "+e.Reason+" | "+e.Error)
					}
				}
				var want []string
				if tc.line != "" {
					want = []string{"change feed refused this agent's token; polling AWS directly at the refresh interval for the secrets it no longer covers | unauthorized | " + tc.line}
				}
				if fmt.Sprint(lines) != fmt.Sprint(want) {
					t.Errorf("error lines:\n%s\nwant:\n%s", strings.Join(lines, "\n"), strings.Join(want, "\n"))
				}
				for _, secret := range []string{currentToken, previousToken, "wrong-token-0123456789abcdef"} {
					if strings.Contains(logs.String(), secret) {
						t.Errorf("a token in the log:\n%s", logs.String())
					}
				}
				if tc.line == "" {
					return
				}
				// Unreachable, then up again but still refusing: the token
				// line again, as someone must still fix it; nothing while it
				// keeps refusing.
				mu.Lock()
				down = true
				mu.Unlock()
				time.Sleep(10 * time.Second)
				mu.Lock()
				down = false
				mu.Unlock()
				time.Sleep(30 * time.Second)
				synctest.Wait()
				if n := strings.Count(logs.String(), `"level":"ERROR","msg":"change feed refused this agent's token`); n != 2 {
					t.Errorf("%d token lines after refused, unreachable, refused; want 2:\n%s", n, logs.String())
				}
			})
		})
	}
}
