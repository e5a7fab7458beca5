package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// TestInitKilledMidRenderNeverLeavesPartialFiles SIGKILLs the agent at
// varied points while it rewrites files that a reader keeps reading: every
// read sees one complete version, and the next run cleans up after it.
func TestInitKilledMidRenderNeverLeavesPartialFiles(t *testing.T) {
	f := newFixture(t)
	const n = 20 // also the array size in mixed
	versions := [2][n]string{}
	var secrets []secretCfg
	for i := range n {
		for v := range 2 {
			// Different lengths, so a torn write would show.
			versions[v][i] = fmt.Sprintf("v%d-%d-%s", v, i, bytes.Repeat([]byte{'a' + byte(v)}, 4096*(1+v*3)+i))
		}
		secrets = append(secrets, secretCfg{"name": fmt.Sprintf("K%02d", i), "valueFrom": fmt.Sprintf("/kill/%02d", i)})
	}
	conf, _ := json.Marshal(secretCfg{"secrets": secrets, "envFile": "all.env"})
	env := append(f.fake.Env(region), "AGENT_CONFIG="+string(conf))
	seed := func(v int) {
		for i := range n {
			f.fake.PutParameter(region, fmt.Sprintf("/kill/%02d", i), versions[v][i], true)
		}
	}
	seed(0)
	if r := runAgent(t, env, nil, "init", "--output-dir", f.out); r.code != 0 {
		t.Fatalf("first run: exit %d\n%s", r.code, r.stderr)
	}
	valid := func(i int, got string) bool { return got == versions[0][i] || got == versions[1][i] }

	ctx, stopReader := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var bad []string
	var reads int
	wg.Add(1)
	go func() {
		defer wg.Done()
		for ctx.Err() == nil {
			for i := range n {
				b, err := os.ReadFile(filepath.Join(f.out, fmt.Sprintf("K%02d", i)))
				reads++
				if err != nil || !valid(i, string(b)) {
					bad = append(bad, fmt.Sprintf("K%02d: %d bytes, err %v", i, len(b), err))
				}
			}
		}
	}()

	// Time one full run, and when its last AWS call arrived: the kills aim
	// at what comes after, the render (before it nothing is written, and a
	// kill there proves nothing).
	seed(1)
	f.fake.ResetCounts()
	start := time.Now()
	if r := runAgent(t, env, nil, "init", "--output-dir", f.out); r.code != 0 {
		t.Fatalf("timing run: exit %d\n%s", r.code, r.stderr)
	}
	full := time.Since(start)
	var fetched time.Duration
	for _, c := range f.fake.CallLog() {
		fetched = max(fetched, c.Time.Sub(start))
	}
	rng := rand.New(rand.NewPCG(1, 2))
	midRender := 0
	for round := range 40 {
		seed(round % 2) // always the other version than the timing run left
		cmd := exec.Command(agentBin, "init", "--output-dir", f.out)
		cmd.Env = env
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		// Kill at a varied point from the last AWS call to the end.
		at := fetched + time.Duration(rng.Int64N(int64(max(full-fetched, time.Millisecond))))
		kill := time.AfterFunc(at, func() { _ = cmd.Process.Kill() })
		_ = cmd.Wait()
		kill.Stop()
		if mixed(t, f.out, n, versions) {
			midRender++
		}
	}
	stopReader()
	wg.Wait()
	if len(bad) > 0 {
		t.Fatalf("%d of %d reads saw a partial or missing file, e.g. %v", len(bad), reads, bad[:min(len(bad), 5)])
	}
	if midRender == 0 {
		t.Errorf("no kill landed mid-render (run takes %s, AWS done after %s); the test proves nothing", full, fetched)
	}
	t.Logf("%d of 40 kills landed mid-render; %d reads", midRender, reads)
	// A clean run afterwards converges and leaves no temp file behind.
	if r := runAgent(t, env, nil, "init", "--output-dir", f.out); r.code != 0 {
		t.Fatalf("final run: exit %d\n%s", r.code, r.stderr)
	}
	files := listDir(t, f.out)
	if len(files) != n+1 {
		t.Errorf("files after the final run: %v", files)
	}
}

// mixed reports whether the files hold both versions: the agent died
// between two renames.
func mixed(t *testing.T, dir string, n int, versions [2][20]string) bool {
	t.Helper()
	seen := [2]bool{}
	for i := range n {
		b, err := os.ReadFile(filepath.Join(dir, fmt.Sprintf("K%02d", i)))
		if err != nil {
			t.Fatal(err)
		}
		for v := range 2 {
			seen[v] = seen[v] || string(b) == versions[v][i]
		}
	}
	return seen[0] && seen[1]
}
