// Command feedmem measures the change feed's watcher with many held
// requests: the real `agent watch --feed-addr` binary against the
// wire-level fake, and N clients in this process, each over its own TCP
// connection. It reports the watcher's goroutines, heap and resident
// memory before and with N requests held, per held request, its CPU while
// they are held, and the time and CPU to answer all of them when a
// reference they share changes. It prints a Markdown table. Run it with
// bench/feedmem/run.sh.
package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/ecs-secrets-agent/ecs-secrets-agent/internal/awsfake"
)

const region = "us-east-1"

func main() {
	agent := flag.String("agent", "bin/agent", "the agent binary")
	clients := flag.Int("clients", 10000, "requests to hold")
	groups := flag.Int("groups", 100, "client groups; each group's clients name 4 parameters of their own and /shared")
	idle := flag.Duration("idle", 10*time.Second, "how long to measure CPU with every request held")
	flag.Parse()
	if err := run(*agent, *clients, *groups, *idle); err != nil {
		fmt.Fprintln(os.Stderr, "feedmem:", err)
		os.Exit(1)
	}
}

// watcher is the agent process and its two addresses.
type watcher struct {
	cmd           *exec.Cmd
	metrics, feed string
	mu            sync.Mutex
	logs          strings.Builder
	exited        chan struct{}
}

func startWatcher(agent string, env []string) (*watcher, error) {
	cmd := exec.Command(agent, "watch", "--feed-addr", "127.0.0.1:0", "--metrics-addr", "127.0.0.1:0", "--interval", "2s")
	cmd.Env = env
	pipe, err := cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	w := &watcher{cmd: cmd, exited: make(chan struct{})}
	found := make(chan struct{})
	go func() {
		mre := regexp.MustCompile(`"msg":"serving /metrics, /healthz and /readyz","addr":"([^"]+)"`)
		fre := regexp.MustCompile(`"msg":"serving the change feed","addr":"([^"]+)"`)
		sc := bufio.NewScanner(pipe)
		for sc.Scan() {
			w.mu.Lock()
			w.logs.WriteString(sc.Text() + "\n")
			if m := mre.FindStringSubmatch(sc.Text()); m != nil {
				w.metrics = m[1]
			}
			if m := fre.FindStringSubmatch(sc.Text()); m != nil {
				w.feed = m[1]
			}
			if w.metrics != "" && w.feed != "" && found != nil {
				close(found)
				found = nil
			}
			w.mu.Unlock()
		}
		_ = cmd.Wait()
		close(w.exited)
	}()
	select {
	case <-found:
		return w, nil
	case <-w.exited:
		return nil, fmt.Errorf("watcher exited:\n%s", w.logs.String())
	case <-time.After(30 * time.Second):
		_ = cmd.Process.Kill()
		return nil, fmt.Errorf("watcher did not log its addresses")
	}
}

// metric reads one unlabelled series from the watcher's /metrics.
func (w *watcher) metric(name string) (float64, error) {
	resp, err := http.Get("http://" + w.metrics + "/metrics")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			return strconv.ParseFloat(v, 64)
		}
	}
	return 0, fmt.Errorf("no %s", name)
}

// snapshot is the watcher's figures at one moment.
type snapshot struct{ goroutines, heap, rss, cpu float64 }

func (w *watcher) snapshot() (snapshot, error) {
	var s snapshot
	for _, m := range []struct {
		name string
		to   *float64
	}{
		{"go_goroutines", &s.goroutines}, {"go_memstats_heap_inuse_bytes", &s.heap},
		{"process_resident_memory_bytes", &s.rss}, {"process_cpu_seconds_total", &s.cpu},
	} {
		v, err := w.metric(m.name)
		if err != nil {
			return s, err
		}
		*m.to = v
	}
	return s, nil
}

func (w *watcher) waitHeld(n int, d time.Duration, progress func() string) error {
	deadline := time.Now().Add(d)
	for {
		v, err := w.metric("ecs_secrets_agent_feed_held_requests")
		if err == nil && int(v) == n {
			return nil
		}
		if os.Getenv("FEEDMEM_DEBUG") != "" { // progress, when a run stalls
			fmt.Fprintf(os.Stderr, "held %v, %s\n", v, progress())
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%v requests held after %s, want %d (%v)", v, d, n, err)
		}
		time.Sleep(200 * time.Millisecond) // polling a gauge another process sets
	}
}

func run(agent string, n, groups int, idle time.Duration) error {
	fake := awsfake.New()
	defer fake.Close()
	fake.PutParameter(region, "/shared", "v", true)
	for g := range groups {
		for p := range 4 {
			fake.PutParameter(region, fmt.Sprintf("/app/%d/p%d", g, p), "v", true)
		}
	}
	w, err := startWatcher(agent, fake.Env(region))
	if err != nil {
		return err
	}
	defer func() {
		_ = w.cmd.Process.Signal(syscall.SIGTERM)
		<-w.exited
	}()

	body := func(g int, version, wait string) string {
		var b strings.Builder
		fmt.Fprintf(&b, `{"region":%q,"wait":%q,"refs":{"/shared":%q`, region, wait, version)
		for p := range 4 {
			fmt.Fprintf(&b, `,"/app/%d/p%d":%q`, g, p, version)
		}
		return b.String() + "}}"
	}
	tr := &http.Transport{MaxIdleConnsPerHost: n, DialContext: (&net.Dialer{Timeout: time.Minute}).DialContext}
	client := &http.Client{Transport: tr}
	var conns atomic.Int64
	trace := &httptrace.ClientTrace{GotConn: func(httptrace.GotConnInfo) { conns.Add(1) }}
	ask := func(ctx context.Context, b string) (string, error) {
		ctx = httptrace.WithClientTrace(ctx, trace)
		req, _ := http.NewRequestWithContext(ctx, "POST", "http://"+w.feed+"/v1/changes", strings.NewReader(b))
		req.Header.Set("Content-Type", "application/json")
		resp, err := client.Do(req)
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		out, err := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 {
			return "", fmt.Errorf("%d %s", resp.StatusCode, out)
		}
		return string(out), err
	}
	// Every key tracked and read once, by one request that waits for the
	// first read: a first read would answer the held requests.
	var all401 strings.Builder
	fmt.Fprintf(&all401, `{"region":%q,"wait":"30s","refs":{"/shared":""`, region)
	for g := range groups {
		for p := range 4 {
			fmt.Fprintf(&all401, `,"/app/%d/p%d":""`, g, p)
		}
	}
	if _, err := ask(context.Background(), all401.String()+"}}"); err != nil {
		return err
	}
	before, err := w.snapshot()
	if err != nil {
		return err
	}

	var answered, failed atomic.Int64
	all := make(chan struct{})
	var errOnce sync.Once
	var firstErr error
	start := time.Now()
	for i := range n {
		go func() {
			_, err := ask(context.Background(), body(i%groups, "1", "5m"))
			if err != nil {
				failed.Add(1)
				errOnce.Do(func() { firstErr = err })
			}
			if answered.Add(1) == int64(n) {
				close(all)
			}
		}()
		if i%500 == 499 {
			time.Sleep(50 * time.Millisecond) // a gentler ramp than 10,000 SYNs at once
		}
	}
	if err := w.waitHeld(n, 3*time.Minute, func() string {
		return fmt.Sprintf("connected %d, answered %d, failed %d", conns.Load(), answered.Load(), failed.Load())
	}); err != nil {
		w.mu.Lock()
		defer w.mu.Unlock()
		return fmt.Errorf("%w (%d answered, %d failed: %v)\n%s", err, answered.Load(), failed.Load(), firstErr, w.logs.String())
	}
	ramp := time.Since(start)
	held, err := w.snapshot()
	if err != nil {
		return err
	}
	time.Sleep(idle) // measuring CPU over a span
	after, err := w.snapshot()
	if err != nil {
		return err
	}

	t0 := time.Now()
	fake.PutParameter(region, "/shared", "v2", true)
	<-all
	told := time.Since(t0)
	done, err := w.snapshot()
	if err != nil {
		return err
	}
	if failed.Load() > 0 {
		return fmt.Errorf("%d requests failed: %v", failed.Load(), firstErr)
	}

	mib := func(b float64) string { return fmt.Sprintf("%.1f MiB", b/(1<<20)) }
	fmt.Printf("%d held requests, %d distinct references (interval 2s), all held within %s\n\n", n, 1+4*groups, ramp.Round(100*time.Millisecond))
	fmt.Println("| watcher | before | with requests held | per held request |")
	fmt.Println("|---|---|---|---|")
	fmt.Printf("| goroutines | %.0f | %.0f | %.2f |\n", before.goroutines, held.goroutines, (held.goroutines-before.goroutines)/float64(n))
	fmt.Printf("| heap in use | %s | %s | %.1f KiB |\n", mib(before.heap), mib(held.heap), (held.heap-before.heap)/float64(n)/1024)
	fmt.Printf("| resident memory | %s | %s | %.1f KiB |\n", mib(before.rss), mib(held.rss), (held.rss-before.rss)/float64(n)/1024)
	fmt.Printf("\nCPU while all %d are held, over %s (polling every 2s included): %.2f s (%.1f %% of one core)\n",
		n, idle, after.cpu-held.cpu, 100*(after.cpu-held.cpu)/idle.Seconds())
	fmt.Printf("A change to the reference all of them name: all %d answered %s after the PutParameter (next poll within 2s), %.2f s of CPU\n",
		n, told.Round(time.Millisecond), done.cpu-after.cpu)
	return nil
}
