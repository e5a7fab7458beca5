package feed

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// Over real TCP, a request is held past the HTTP server's ReadTimeout
// (net/http lifts it once the body is read), and a client that stalls its
// body is cut off at it.
func TestHeldPastReadTimeoutOverTCP(t *testing.T) {
	src := newSource()
	src.set(paramKey, "3")
	s := NewServer(ServerOptions{Source: src, Regions: []string{"eu-west-1"}})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- s.Run(ctx) }()
	defer func() { cancel(); <-done }()
	srv := httptest.NewUnstartedServer(s.Handler())
	srv.Config.ReadHeaderTimeout = time.Second
	srv.Config.ReadTimeout = 200 * time.Millisecond
	srv.Start()
	defer srv.Close()

	post := func(body string) (int, string) {
		resp, err := http.Post(srv.URL+Path, "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	code, body := post(`{"region":"eu-west-1","refs":{"/prod/api/key":""}}`)
	if code != 200 || !strings.Contains(body, `"version":"3"`) {
		t.Fatalf("first read: %d %s", code, body)
	}
	t0 := time.Now()
	code, body = post(`{"region":"eu-west-1","wait":"1s","refs":{"/prod/api/key":"3"}}`)
	if code != 200 || !strings.Contains(body, `"changed":[]`) || time.Since(t0) < time.Second {
		t.Errorf("held request: %d %s after %s, want 200 at its 1s wait", code, body, time.Since(t0))
	}

	// Headers, then a body that never comes.
	c, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_, _ = io.WriteString(c, "POST "+Path+" HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{")
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("a stalled body got no answer: %v", err)
	}
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 400 || !strings.Contains(string(b), "i/o timeout") {
		t.Errorf("stalled body: %d %s", resp.StatusCode, b)
	}
}
