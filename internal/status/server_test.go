package status

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// syncBuffer is a log destination that the server's goroutines and the test
// share.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// serveTest serves h on a loopback port with lim and a JSON logger writing to
// the returned buffer.
func serveTest(t *testing.T, h http.Handler, lim limits) (string, *syncBuffer) {
	t.Helper()
	logs := &syncBuffer{}
	log := slog.New(slog.NewJSONHandler(logs, nil))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr, shutdown, err := serve(ln, h, log, lim)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = shutdown(t.Context()) })
	return addr, logs
}

func okHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok\n") })
}

// get sends one GET over c and returns the status line, or the error.
func get(c net.Conn, br *bufio.Reader) (string, error) {
	if _, err := io.WriteString(c, "GET /healthz HTTP/1.1\r\nHost: agent\r\n\r\n"); err != nil {
		return "", err
	}
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.Status, nil
}

// waitClosed reads c until the server closes it, or fails after d: a
// connection the server never closes would read forever.
func waitClosed(t *testing.T, c net.Conn, d time.Duration) {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(d))
	_, err := io.Copy(io.Discard, c)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("the server kept the connection open for %s", d)
	}
}

// The production limits, exactly: what the README documents.
func TestServerLimits(t *testing.T) {
	srv := newServer(okHandler(), slog.New(slog.DiscardHandler), defaultLimits())
	got := []time.Duration{srv.ReadHeaderTimeout, srv.ReadTimeout, srv.WriteTimeout, srv.IdleTimeout}
	want := []time.Duration{5 * time.Second, 10 * time.Second, 30 * time.Second, 10 * time.Second}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("timeouts (read header, read, write, idle) = %v, want %v", got, want)
			break
		}
	}
	if srv.ErrorLog == nil {
		t.Error("no ErrorLog: the server's own errors would go to the standard logger as plain text")
	}
	if lim := defaultLimits(); lim.maxConns != 16 || lim.loopbackReserve != 4 {
		t.Errorf("connection limit %d + %d loopback, want 16 + 4", lim.maxConns, lim.loopbackReserve)
	}
}

// A client that connects and sends nothing, or goes idle after a request,
// loses its connection: it cannot hold a descriptor for ever.
func TestServerClosesSilentAndIdleConnections(t *testing.T) {
	lim := defaultLimits()
	lim.readHeader, lim.idle = 50*time.Millisecond, 50*time.Millisecond
	addr, _ := serveTest(t, okHandler(), lim)

	silent, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	waitClosed(t, silent, 10*time.Second)

	idle, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Close()
	if status, err := get(idle, bufio.NewReader(idle)); err != nil || status != "200 OK" {
		t.Fatalf("GET = %q, %v", status, err)
	}
	waitClosed(t, idle, 10*time.Second)
}

// A client that sends its headers a byte at a time is cut off by the
// read-header timeout.
func TestServerClosesSlowHeaders(t *testing.T) {
	lim := defaultLimits()
	lim.readHeader = 50 * time.Millisecond
	addr, _ := serveTest(t, okHandler(), lim)
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := io.WriteString(c, "GET /healthz HTTP/1.1\r\nHost: a"); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(c)
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	// The server answers 408 or just closes; either way the connection ends.
	_, err = io.Copy(io.Discard, br)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatal("a half-sent header held the connection open")
	}
}

// Past the limit a connection is closed at once; a slot freed is usable again.
func TestServerConnectionLimit(t *testing.T) {
	lim := defaultLimits()
	lim.maxConns, lim.loopbackReserve = 3, 1
	addr, logs := serveTest(t, okHandler(), lim)

	// Four held connections: three shared slots and the loopback reserve.
	var held []net.Conn
	for i := range 4 {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if status, err := get(c, bufio.NewReader(c)); err != nil || status != "200 OK" {
			t.Fatalf("connection %d: GET = %q, %v", i, status, err)
		}
		held = append(held, c)
	}

	over, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer over.Close()
	_ = over.SetReadDeadline(time.Now().Add(10 * time.Second))
	if status, err := get(over, bufio.NewReader(over)); err == nil {
		t.Fatalf("a fifth connection was served (%s); want it closed", status)
	} else if ne := net.Error(nil); errors.As(err, &ne) && ne.Timeout() {
		t.Fatal("a fifth connection was held, not closed")
	}
	want := `"level":"WARN","msg":"too many connections to the metrics endpoint; refusing more until one closes","limit":3,"remote_addr":"127.0.0.1:`
	if got := logs.String(); strings.Count(got, "too many connections") != 1 || !strings.Contains(got, want) {
		t.Errorf("logs = %s\nwant one line containing %s", got, want)
	}

	// The server notices the close asynchronously; until then the slot is
	// still taken and a new connection is refused.
	held[0].Close()
	poll(t, "a slot freed by closing a connection", func() bool {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		status, err := get(c, bufio.NewReader(c))
		return err == nil && status == "200 OK"
	})
}

// poll checks cond every 10ms until it holds, or fails after 10s.
func poll(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		<-tick.C
	}
}

// Remote clients get the shared slots only; the reserve is for this machine's
// own health check.
func TestLimitListenerLoopbackReserve(t *testing.T) {
	l := newLimitListener(nil, 2, 1, slog.New(slog.DiscardHandler))
	remote := &net.TCPAddr{IP: net.ParseIP("10.0.1.7"), Port: 40000}
	local := &net.TCPAddr{IP: net.ParseIP("127.0.0.1"), Port: 40001}
	local6 := &net.TCPAddr{IP: net.IPv6loopback, Port: 40002}

	r1, ok1 := l.acquire(remote)
	_, ok2 := l.acquire(remote)
	if !ok1 || !ok2 {
		t.Fatal("remote clients did not get the shared slots")
	}
	if _, ok := l.acquire(remote); ok {
		t.Fatal("a remote client got the loopback reserve")
	}
	r3, ok := l.acquire(local6)
	if !ok {
		t.Fatal("a loopback client did not get the reserve")
	}
	if _, ok := l.acquire(local); ok {
		t.Fatal("a loopback client got a slot past the reserve")
	}
	r1()
	r1() // a second Close gives nothing back twice
	if _, ok := l.acquire(remote); !ok {
		t.Fatal("a released shared slot was not reused")
	}
	if _, ok := l.acquire(remote); ok {
		t.Fatal("a double release freed two slots")
	}
	r3()
	if _, ok := l.acquire(local); !ok {
		t.Fatal("a released reserved slot was not reused")
	}
}

// The server's own messages (here a handler panic) are JSON lines from slog,
// not plain text from the standard logger.
func TestServerErrorsAreJSON(t *testing.T) {
	h := http.HandlerFunc(func(http.ResponseWriter, *http.Request) { panic("boom") })
	addr, logs := serveTest(t, h, defaultLimits())
	if resp, err := http.Get("http://" + addr + "/"); err == nil {
		resp.Body.Close()
	}
	poll(t, "the panic line", func() bool { return strings.Contains(logs.String(), "panic serving") })
	for _, line := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("log line is not JSON: %q", line)
		}
		if rec["level"] != "WARN" || rec["component"] != "http" {
			t.Errorf("log line %q: want level WARN, component http", line)
		}
	}
}

func TestServeBadAddress(t *testing.T) {
	_, _, err := Serve("127.0.0.1:notaport", okHandler(), slog.New(slog.DiscardHandler))
	if err == nil || !strings.HasPrefix(err.Error(), "serving metrics on 127.0.0.1:notaport: ") {
		t.Fatalf("Serve = %v", err)
	}
}

func TestServeAndShutdown(t *testing.T) {
	addr, shutdown, err := Serve("127.0.0.1:0", okHandler(), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get("http://" + addr + "/")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(body) != "ok\n" {
		t.Fatalf("body %q", body)
	}
	if err := shutdown(t.Context()); err != nil {
		t.Fatal(err)
	}
	if _, err := net.Dial("tcp", addr); err == nil {
		t.Fatal("still listening after shutdown")
	}
}
