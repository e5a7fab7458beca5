package action

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/ecs-secrets-agent/ecs-secrets-agent/internal/config"
)

const (
	maxDrain       = 64 << 10 // read this much of a reply at most, so a chatty app cannot stall us
	maxBodyInError = 200
	maxRedirects   = 10
)

type httpAction struct {
	method  string
	url     string
	shown   string // url with its password and query values redacted, for errors and logs
	expect  int    // 0: any 2xx
	timeout time.Duration
	client  *http.Client
	log     *slog.Logger
}

func newHTTP(c config.HTTPAction, client *http.Client, log *slog.Logger) *httpAction {
	if c.ExpectStatus >= 300 && c.ExpectStatus < 400 {
		// The app's answer is the redirect itself.
		own := *client
		own.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
		client = &own
	}
	// config always sets these; a value built by hand may not.
	if c.Method == "" {
		c.Method = http.MethodPost
	}
	if c.Timeout <= 0 {
		c.Timeout = config.DefaultHTTPTimeout
	}
	return &httpAction{
		method:  c.Method,
		url:     c.URL.String(),
		shown:   c.Redacted(),
		expect:  c.ExpectStatus,
		timeout: c.Timeout,
		client:  client,
		log:     log,
	}
}

func (a *httpAction) Kind() string { return "http" }

func (a *httpAction) Run(ctx context.Context, _ Change) error {
	timedOut := fmt.Errorf("no response within %s", a.timeout)
	ctx, cancel := context.WithTimeoutCause(ctx, a.timeout, timedOut)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, a.method, a.url, nil)
	if err != nil {
		// Not wrapped: a parse error would repeat the whole URL.
		return fmt.Errorf("http: %s %s: cannot build the request", a.method, a.shown)
	}
	req.Header.Set("User-Agent", "ecs-secrets-agent")
	a.log.Debug("calling reload URL", "method", a.method, "url", a.shown, "timeout", a.timeout.String())
	resp, err := a.client.Do(req)
	if err != nil {
		// Do already closed any body; the *url.Error repeats method and URL.
		if ue, ok := errors.AsType[*url.Error](err); ok {
			err = ue.Err
		}
		if context.Cause(ctx) == timedOut {
			return fmt.Errorf("http: %s %s: no response within %s: %w", a.method, a.shown, a.timeout, context.DeadlineExceeded)
		}
		return fmt.Errorf("http: %s %s: %w", a.method, a.shown, err)
	}
	body := io.LimitReader(resp.Body, maxDrain)
	defer func() {
		// Draining lets the transport reuse the connection.
		_, _ = io.Copy(io.Discard, body)
		_ = resp.Body.Close()
	}()
	if a.statusOK(resp.StatusCode) {
		a.log.Info(fmt.Sprintf("reload URL answered %d", resp.StatusCode), "action", "http", "method", a.method, "url", a.shown, "status", resp.StatusCode)
		return nil
	}
	want := "2xx"
	if a.expect != 0 {
		want = strconv.Itoa(a.expect)
	}
	msg := fmt.Sprintf("http: %s %s: got status %s, want %s", a.method, a.shown, resp.Status, want)
	// The body is the app's reply, not a secret; its start usually says why.
	head, _ := io.ReadAll(io.LimitReader(body, maxBodyInError))
	if s := strings.TrimSpace(strings.ToValidUTF8(string(head), "\uFFFD")); s != "" {
		msg += fmt.Sprintf(": %q", s)
	}
	return errors.New(msg)
}

func (a *httpAction) statusOK(code int) bool {
	if a.expect != 0 {
		return code == a.expect
	}
	return code >= 200 && code <= 299
}

// noCrossHostRedirects returns a copy of c (or a new client with its own
// transport, so nothing is shared with http.DefaultTransport) that follows
// redirects only on the same host and never from https to http: a reload
// endpoint that redirects elsewhere is a misconfiguration, not something to
// POST to.
func noCrossHostRedirects(c *http.Client) *http.Client {
	var out http.Client
	if c != nil {
		out = *c
	} else {
		out.Transport = http.DefaultTransport.(*http.Transport).Clone()
	}
	next := out.CheckRedirect
	out.CheckRedirect = func(req *http.Request, via []*http.Request) error {
		from := via[0].URL
		if !strings.EqualFold(req.URL.Host, from.Host) {
			return fmt.Errorf("redirect to %s refused: it leaves %s", config.RedactURL(req.URL), from.Host)
		}
		if from.Scheme == "https" && req.URL.Scheme != "https" {
			return fmt.Errorf("redirect to %s refused: it leaves https", config.RedactURL(req.URL))
		}
		if next != nil {
			return next(req, via)
		}
		if len(via) >= maxRedirects {
			return fmt.Errorf("stopped after %d redirects", maxRedirects)
		}
		return nil
	}
	return &out
}
