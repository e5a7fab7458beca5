package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/ecs-secrets-agent/ecs-secrets-agent/internal/config"
	"github.com/ecs-secrets-agent/ecs-secrets-agent/internal/feed"
	"github.com/ecs-secrets-agent/ecs-secrets-agent/internal/refresh"
)

// feedSide is the change feed of a run: the real `agent watch
// --feed-addr` in a process of its own (so that its memory is its own, and
// killing it is SIGKILL), and one feed.Client per agent over real HTTP.
type feedSide struct {
	url     string
	cmd     *exec.Cmd
	done    chan struct{}
	http    *http.Client
	clients []*feed.Client
	wg      sync.WaitGroup
	cancel  context.CancelFunc

	mu     sync.Mutex
	killed bool
	mem    string // VmRSS and VmHWM, read before the watcher stops
}

// watcherInterval is the watcher's poll interval in fleet time: the
// default of `agent watch --feed-addr`.
const watcherInterval = time.Minute

func startFeed(ctx context.Context, fl *fleet, o Options, speed float64, n int) (*feedSide, error) {
	if o.Agent == "" {
		return nil, errors.New("feed scenarios need the agent binary (-agent)")
	}
	iv := time.Duration(float64(watcherInterval) / speed).Round(time.Millisecond)
	cmd := exec.Command(o.Agent, "watch", "--feed-addr", "127.0.0.1:0", "--metrics-addr", "127.0.0.1:0",
		"--interval", iv.String(), "--feed-max-clients", strconv.Itoa(n+1000), "--log-level", "info")
	env := []string{"PATH=" + os.Getenv("PATH")}
	for _, kv := range fl.fake.Env(region) {
		if strings.HasPrefix(kv, "AWS_ENDPOINT_URL=") {
			kv = "AWS_ENDPOINT_URL=" + fl.lim.URL
		}
		env = append(env, kv)
	}
	cmd.Env = env
	// A simulator that dies takes its watcher along.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	fd := &feedSide{cmd: cmd, done: make(chan struct{})}
	addr := make(chan string, 1)
	go func() {
		// The bound address is in the log; the rest is drained.
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			var line struct{ Msg, Addr string }
			if json.Unmarshal(sc.Bytes(), &line) == nil && line.Msg == "serving the change feed" {
				select {
				case addr <- line.Addr:
				default:
				}
			}
		}
		_, _ = io.Copy(io.Discard, stderr)
	}()
	go func() { _ = cmd.Wait(); close(fd.done) }()
	select {
	case a := <-addr:
		fd.url = "http://" + a
	case <-fd.done:
		return nil, fmt.Errorf("agent watch exited before serving the feed")
	case <-time.After(30 * time.Second):
		_ = cmd.Process.Kill()
		return nil, fmt.Errorf("agent watch did not serve the feed within 30s")
	}
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.Proxy = nil
	t.MaxIdleConns, t.MaxIdleConnsPerHost = n+100, n+100
	fd.http = &http.Client{Transport: t}
	return fd, nil
}

// attach gives agent i's loop a feed client.
func (fd *feedSide) attach(i int, seed uint64, lo *refresh.Options, s *config.Settings) error {
	rng := rand.New(rand.NewPCG(seed, uint64(i)|1<<40))
	c, err := feed.NewClient(feed.ClientOptions{URL: fd.url, Region: region, Interval: s.Interval, HTTP: fd.http,
		Log: lo.Log, Now: time.Now, Rand: rng.Float64})
	if err != nil {
		return err
	}
	fd.clients = append(fd.clients, c)
	lo.Feed = c
	return nil
}

// startClients starts every client's long poll.
func (fd *feedSide) startClients(ctx context.Context) {
	ctx, fd.cancel = context.WithCancel(ctx)
	for _, c := range fd.clients {
		fd.wg.Go(func() { c.Run(ctx) })
	}
}

// waitCovered waits until every client vouches for every secret its agent
// holds: the fleet in its steady state, before the span starts. It returns
// how many agents are not covered when the deadline passes.
func (fd *feedSide) waitCovered(agents []*agent, deadline time.Duration) int {
	end := time.Now().Add(deadline)
	for {
		left := 0
		for i, a := range agents {
			have := a.loop.Values()
			for _, r := range a.reqs {
				if !fd.clients[i].Covered(r, have[r.Name].Version) {
					left++
					break
				}
			}
		}
		if left == 0 || time.Now().After(end) {
			return left
		}
		time.Sleep(100 * time.Millisecond) // polling a condition with a deadline
	}
}

// kill is SIGKILL: no answer to held requests, no goodbye.
func (fd *feedSide) kill() {
	fd.readMemory()
	fd.mu.Lock()
	fd.killed = true
	fd.mu.Unlock()
	_ = fd.cmd.Process.Kill()
}

func (fd *feedSide) readMemory() {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", fd.cmd.Process.Pid))
	if err != nil {
		return
	}
	var rss, hwm string
	for _, l := range strings.Split(string(b), "\n") {
		k, v, _ := strings.Cut(l, ":")
		switch k {
		case "VmRSS":
			rss = strings.TrimSpace(v)
		case "VmHWM":
			hwm = strings.TrimSpace(v)
		}
	}
	fd.mu.Lock()
	defer fd.mu.Unlock()
	if fd.mem == "" {
		fd.mem = fmt.Sprintf("watcher RSS %s (peak %s)", rss, hwm)
	}
}

// stop ends the clients, then the watcher.
func (fd *feedSide) stop() {
	if fd.cancel != nil {
		fd.cancel()
	}
	fd.wg.Wait()
	_ = fd.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-fd.done:
	case <-time.After(10 * time.Second):
		_ = fd.cmd.Process.Kill()
		<-fd.done
	}
}

func (fd *feedSide) memory() string {
	fd.mu.Lock()
	defer fd.mu.Unlock()
	return fd.mem
}
