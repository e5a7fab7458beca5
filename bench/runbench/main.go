// Command runbench measures `agent run` (the sidecar) against the wire-level
// fake: API calls per refresh cycle with nothing changed, resident memory
// with N secrets after several cycles, and CPU used while idle. It prints a
// Markdown table. Run it with bench/run.sh.
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/ecs-secrets-agent/ecs-secrets-agent/internal/awsfake"
)

const region = "us-east-1"

func main() {
	agent := flag.String("agent", "bin/agent", "the agent binary")
	params := flag.Int("params", 80, "parameters")
	secrets := flag.Int("secrets", 20, "secrets")
	cycles := flag.Int("cycles", 10, "no-change cycles to count calls over (1s interval)")
	idle := flag.Duration("idle", time.Minute, "how long to measure idle CPU (interval 5m)")
	flag.Parse()
	if err := run(*agent, *params, *secrets, *cycles, *idle); err != nil {
		fmt.Fprintln(os.Stderr, "runbench:", err)
		os.Exit(1)
	}
}

func run(agent string, nParams, nSecrets, cycles int, idle time.Duration) error {
	fake := awsfake.New()
	defer fake.Close()
	var refs []map[string]string
	for i := range nParams {
		p := fmt.Sprintf("/bench/param-%03d", i)
		fake.PutParameter(region, p, fmt.Sprintf("value-%03d-%s", i, strings.Repeat("x", 64)), i%2 == 0)
		refs = append(refs, map[string]string{"name": fmt.Sprintf("P%03d", i), "valueFrom": p})
	}
	for i := range nSecrets {
		arn := fake.PutSecretString(region, fmt.Sprintf("bench/secret-%03d", i), fmt.Sprintf(`{"user":"u%d","password":"%s"}`, i, strings.Repeat("p", 32)))
		refs = append(refs, map[string]string{"name": fmt.Sprintf("S%03d", i), "valueFrom": arn})
	}
	out, err := os.MkdirTemp("", "runbench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(out)

	// Part 1: a 1s interval, to count calls over many unchanged cycles and
	// read RSS after them.
	conf, _ := json.Marshal(map[string]any{"secrets": refs, "refresh": map[string]string{"interval": "1s", "jitter": "100ms"}})
	a, err := start(agent, append(fake.Env(region), "AGENT_CONFIG="+string(conf)), filepath.Join(out, "fast"))
	if err != nil {
		return err
	}
	if err := a.waitReady(); err != nil {
		return err
	}
	initial := map[string]int{}
	for _, c := range fake.CallLog() {
		initial[c.Op]++
	}
	// Let one poll pass, then count from a clean slate.
	if err := waitCalls(fake, "DescribeSecret", 1, 30*time.Second); err != nil {
		return err
	}
	fake.ResetCounts()
	if err := waitCalls(fake, "DescribeSecret", cycles*nSecrets, time.Duration(cycles)*5*time.Second); err != nil {
		return err
	}
	calls := map[string]int{}
	decrypting := 0
	for _, c := range fake.CallLog() {
		calls[c.Op]++
		if c.Op == "GetSecretValue" || (c.Op == "GetParameters" && c.WithDecryption) {
			decrypting++
		}
	}
	// The counting window can end mid-cycle: count cycles by DescribeSecret,
	// which every cycle makes exactly nSecrets of.
	polls := float64(calls["DescribeSecret"]) / float64(nSecrets)
	rss, err := a.rss()
	if err != nil {
		return err
	}
	if os.Getenv("RUNBENCH_DEBUG") != "" {
		b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/smaps_rollup", a.cmd.Process.Pid))
		fmt.Fprintln(os.Stderr, string(b))
		resp, err := http.Get(strings.TrimSuffix(a.url, "/readyz") + "/metrics")
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			for _, l := range strings.Split(string(body), "\n") {
				if strings.HasPrefix(l, "go_memstats_") || strings.HasPrefix(l, "go_goroutines") {
					fmt.Fprintln(os.Stderr, l)
				}
			}
		}
	}
	a.stop()

	// Part 2: the default-like 5m interval, idle CPU over a minute.
	conf, _ = json.Marshal(map[string]any{"secrets": refs, "refresh": map[string]string{"interval": "5m"}})
	b, err := start(agent, append(fake.Env(region), "AGENT_CONFIG="+string(conf)), filepath.Join(out, "idle"))
	if err != nil {
		return err
	}
	if err := b.waitReady(); err != nil {
		return err
	}
	cpu0, err := b.cpu()
	if err != nil {
		return err
	}
	time.Sleep(idle) // the measurement window itself
	cpu1, err := b.cpu()
	if err != nil {
		return err
	}
	idleRSS, _ := b.rss()
	b.stop()

	fmt.Printf("| what | value |\n|---|---|\n")
	fmt.Printf("| secrets | %d parameters + %d Secrets Manager secrets |\n", nParams, nSecrets)
	fmt.Printf("| first render | %d GetParameters + %d GetSecretValue |\n", initial["GetParameters"], initial["GetSecretValue"])
	fmt.Printf("| calls per unchanged cycle (1s interval, over %.0f cycles) | %.1f GetParameters (no decryption) + %.1f DescribeSecret; %d decrypting calls in all |\n",
		polls, float64(calls["GetParameters"])/polls, float64(calls["DescribeSecret"])/polls, decrypting)
	fmt.Printf("| budget per unchanged cycle | ceil(P/10) = %d GetParameters + S = %d DescribeSecret, 0 decrypting |\n", (nParams+9)/10, nSecrets)
	fmt.Printf("| resident memory after %.0f cycles at 1s (VmRSS) | %s |\n", polls, rss)
	fmt.Printf("| resident memory idle, 5m interval, after %s (VmRSS) | %s |\n", idle, idleRSS)
	fmt.Printf("| CPU while idle for %s (5m interval) | %s (%.3f%% of one core) |\n", idle, cpu1-cpu0, 100*float64(cpu1-cpu0)/float64(idle))
	return nil
}

type proc struct {
	cmd  *exec.Cmd
	addr chan string
	url  string
}

func start(agent string, env []string, out string) (*proc, error) {
	p := &proc{cmd: exec.Command(agent, "run", "--metrics-addr", "127.0.0.1:0", "--output-dir", out), addr: make(chan string, 1)}
	p.cmd.Env = env
	pipe, err := p.cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	if err := p.cmd.Start(); err != nil {
		return nil, err
	}
	re := regexp.MustCompile(`"addr":"([^"]+)"`)
	go func() {
		sc := bufio.NewScanner(pipe)
		for sc.Scan() {
			if m := re.FindStringSubmatch(sc.Text()); m != nil {
				select {
				case p.addr <- m[1]:
				default:
				}
			}
		}
	}()
	return p, nil
}

func (p *proc) waitReady() error {
	select {
	case a := <-p.addr:
		p.url = "http://" + a + "/readyz"
	case <-time.After(30 * time.Second):
		return fmt.Errorf("agent did not start")
	}
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		if resp, err := http.Get(p.url); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return nil
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("agent not ready after 60s")
}

func (p *proc) stop() {
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	_ = p.cmd.Wait()
}

// memory is resident memory in KiB: all of it, the anonymous part (heap,
// stacks: what the agent allocates) and the file-backed part (the binary's
// pages, shared with the page cache and reclaimable).
type memory struct{ rss, anon, file int64 }

func (m memory) String() string {
	return fmt.Sprintf("%.1f MiB (%.1f MiB anonymous + %.1f MiB file-backed)", float64(m.rss)/1024, float64(m.anon)/1024, float64(m.file)/1024)
}

func (p *proc) rss() (memory, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.cmd.Process.Pid))
	if err != nil {
		return memory{}, err
	}
	var m memory
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		v, _ := strconv.ParseInt(f[1], 10, 64)
		switch f[0] {
		case "VmRSS:":
			m.rss = v
		case "RssAnon:":
			m.anon = v
		case "RssFile:":
			m.file = v
		}
	}
	if m.rss == 0 {
		return m, fmt.Errorf("no VmRSS")
	}
	return m, nil
}

// cpu reads user+system CPU time from /proc/PID/stat.
func (p *proc) cpu() (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p.cmd.Process.Pid))
	if err != nil {
		return 0, err
	}
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * time.Second / 100, nil // USER_HZ is 100 on Linux
}

func waitCalls(f *awsfake.Fake, op string, n int, d time.Duration) error {
	deadline := time.Now().Add(d)
	for f.Calls(op) < n {
		if time.Now().After(deadline) {
			return fmt.Errorf("only %d %s calls after %s, want %d", f.Calls(op), op, d, n)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return nil
}
