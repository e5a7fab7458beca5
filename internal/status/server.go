package status

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"
)

// Limits of the endpoints' server (README "Health and metrics"). A scrape or
// a health check is one small GET; anything slower or longer-lived is a stuck
// or hostile client holding a file descriptor that the agent needs to write
// secrets.
const (
	// MaxConns caps concurrent connections: Prometheus keeps one, a health
	// check opens one at a time, a person with curl one more.
	MaxConns = 16
	// LoopbackReserve more are kept for connections from this machine (the
	// task's own `agent health`), so remote clients holding every slot
	// cannot fail the container's health check.
	LoopbackReserve = 4

	readHeaderTimeout = 5 * time.Second
	readTimeout       = 10 * time.Second
	// A /metrics page is written well within Prometheus's default 10s
	// scrape timeout; 30s leaves room for a loaded machine.
	writeTimeout = 30 * time.Second
	// Shorter than a typical 15s scrape interval: Prometheus reconnects
	// per scrape, and an idle keep-alive connection frees its slot soon.
	idleTimeout = 10 * time.Second
)

// Serve serves h on addr with the limits above until shutdown is called. It
// returns the address it listens on (port 0 picks one). The server's own
// errors (a failed Accept, a handler panic) go to log as JSON like every
// other line, not as plain text into the same stream.
func Serve(addr string, h http.Handler, log *slog.Logger) (bound string, shutdown func(context.Context) error, err error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return "", nil, fmt.Errorf("serving metrics on %s: %w", addr, err)
	}
	return serve(ln, h, log, defaultLimits())
}

// limits are the server's limits; tests shorten them.
type limits struct {
	readHeader, read, write, idle time.Duration
	maxConns, loopbackReserve     int
}

func defaultLimits() limits {
	return limits{
		readHeader: readHeaderTimeout, read: readTimeout, write: writeTimeout, idle: idleTimeout,
		maxConns: MaxConns, loopbackReserve: LoopbackReserve,
	}
}

func serve(ln net.Listener, h http.Handler, log *slog.Logger, lim limits) (string, func(context.Context) error, error) {
	srv := newServer(h, log, lim)
	go func() { _ = srv.Serve(newLimitListener(ln, lim.maxConns, lim.loopbackReserve, log)) }()
	return ln.Addr().String(), srv.Shutdown, nil
}

func newServer(h http.Handler, log *slog.Logger, lim limits) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: lim.readHeader,
		ReadTimeout:       lim.read,
		WriteTimeout:      lim.write,
		IdleTimeout:       lim.idle,
		MaxHeaderBytes:    16 << 10, // a GET with a few headers
		ErrorLog:          slog.NewLogLogger(log.With("component", "http").Handler(), slog.LevelWarn),
	}
}

// limitListener holds at most max connections open, plus reserve more from
// loopback addresses. A connection over the limit is closed at once: its
// client sees a reset it can retry instead of a hang, and the agent never
// holds more descriptors than the limit.
type limitListener struct {
	net.Listener
	max, reserve int
	log          *slog.Logger

	mu       sync.Mutex
	open     int  // connections holding a shared slot
	reserved int  // loopback connections holding a reserved slot
	full     bool // a refusal was logged since the last release
}

func newLimitListener(l net.Listener, maxConns, reserve int, log *slog.Logger) *limitListener {
	return &limitListener{Listener: l, max: maxConns, reserve: reserve, log: log}
}

func (l *limitListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if release, ok := l.acquire(c.RemoteAddr()); ok {
			return &limitConn{Conn: c, release: release}, nil
		}
		_ = c.Close()
	}
}

// acquire takes a slot for a connection from remote, or reports false.
func (l *limitListener) acquire(remote net.Addr) (release func(), ok bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	switch {
	case l.open < l.max:
		l.open++
		return l.releaser(&l.open), true
	case l.reserved < l.reserve && isLoopback(remote):
		l.reserved++
		return l.releaser(&l.reserved), true
	}
	if !l.full {
		l.full = true
		l.log.Warn("too many connections to the metrics endpoint; refusing more until one closes",
			"limit", l.max, "remote_addr", remote.String())
	}
	return nil, false
}

func (l *limitListener) releaser(n *int) func() {
	var once sync.Once
	return func() {
		once.Do(func() {
			l.mu.Lock()
			defer l.mu.Unlock()
			*n--
			l.full = false
		})
	}
}

func isLoopback(a net.Addr) bool {
	tcp, ok := a.(*net.TCPAddr)
	return ok && tcp.IP.IsLoopback()
}

// limitConn gives its slot back when closed, once.
type limitConn struct {
	net.Conn
	release func()
}

func (c *limitConn) Close() error {
	err := c.Conn.Close()
	c.release()
	return err
}
