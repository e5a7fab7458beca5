package status

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Handler serves /healthz (200 "ok\n" once the first render is done, else
// 503 "first render not done\n"), /readyz (200 "ready\n", or 503 with the
// detail lines; stale secrets and problems within their limit are listed
// after "ready") and /metrics from g. Other paths are 404; methods other than
// GET and HEAD are 405.
func Handler(s *Status, g prometheus.Gatherer) http.Handler {
	mux := http.NewServeMux()
	// "GET /x" also matches HEAD, answers 405 with Allow to other methods,
	// and matches /x exactly, so /healthz/ or /metricsx are 404.
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		if ok, detail := s.Healthy(); !ok {
			text(w, http.StatusServiceUnavailable, detail+"\n")
			return
		}
		text(w, http.StatusOK, "ok\n")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		ok, detail := s.Ready()
		switch {
		case !ok:
			text(w, http.StatusServiceUnavailable, detail+"\n")
		case detail != "":
			text(w, http.StatusOK, "ready\n"+detail+"\n")
		default:
			text(w, http.StatusOK, "ready\n")
		}
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(g, promhttp.HandlerOpts{
		// Handler has no logger to report a collector's error to, so a
		// failing Gather answers 500 with the error: the scrape fails
		// visibly (up == 0, the error on Prometheus's targets page) instead
		// of silently dropping series.
		ErrorHandling: promhttp.HTTPErrorOnError,
	}))
	// No catch-all: it would also match POST /readyz and hide the 405.
	return mux
}

func text(w http.ResponseWriter, code int, body string) {
	h := w.Header()
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_, _ = io.WriteString(w, body) // an error means the client went away
}

// Check is `agent health`: it GETs http://addr/path (path is "/healthz", or
// "/readyz" for `agent health --ready`) and returns nil on 200, else an error
// carrying the endpoint, the status and the (trimmed) body, or the connection
// error. addr is the --metrics-addr the agent listens on; an empty or
// unspecified host (":9102", "0.0.0.0:9102") means this machine. The request
// is bounded by ctx and client's Timeout; a nil client means one with a 5s
// timeout, the default of an ECS container health check.
func Check(ctx context.Context, addr, path string, client *http.Client) error {
	if client == nil {
		client = &http.Client{Timeout: 5 * time.Second}
	}
	what := strings.TrimPrefix(path, "/")
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("%s: metrics address %q is not HOST:PORT: %w", what, addr, err)
	}
	switch host {
	case "", "0.0.0.0":
		host = "127.0.0.1"
	case "::":
		host = "::1"
	}
	url := "http://" + net.JoinHostPort(host, port) + path
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	defer resp.Body.Close()
	// The detail is a line per stale secret or problem; 64 KiB is far more
	// than any real configuration produces and bounds a misdirected request.
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode == http.StatusOK {
		return nil
	}
	msg := strings.TrimSpace(string(body))
	if err != nil {
		msg += " (reading body: " + err.Error() + ")"
	}
	if msg == "" {
		return fmt.Errorf("%s: %s", what, resp.Status)
	}
	return fmt.Errorf("%s: %s: %s", what, resp.Status, msg)
}
