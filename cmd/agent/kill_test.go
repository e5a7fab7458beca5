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
	"regexp"
	"sync"
	"testing"
	"time"

	"github.com/fsnotify/fsnotify"
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

	// Each round kills the agent at a varied point after its first rename
	// into place: from then on until its last one, a kill leaves both
	// versions on disk. A timer aimed from a timed run missed that window
	// under load; the rename event does not. Rounds go on until enough kills
	// landed mid-render to mean something, within a deadline.
	rng := rand.New(rand.NewPCG(1, 2))
	midRender, rounds := 0, 0
	deadline := time.Now().Add(60 * time.Second)
	for midRender < 5 && rounds < 400 && time.Now().Before(deadline) {
		seed((rounds + 1) % 2) // the other version than the files hold
		rounds++
		killAtFirstRename(t, f.out, env, time.Duration(rng.Int64N(int64(2*time.Millisecond))))
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
		t.Errorf("no kill of %d landed mid-render; the test proves nothing", rounds)
	}
	t.Logf("%d of %d kills landed mid-render; %d reads", midRender, rounds, reads)
	// A clean run afterwards converges and leaves no temp file behind.
	if r := runAgent(t, env, nil, "init", "--output-dir", f.out); r.code != 0 {
		t.Fatalf("final run: exit %d\n%s", r.code, r.stderr)
	}
	files := listDir(t, f.out)
	if len(files) != n+1 {
		t.Errorf("files after the final run: %v", files)
	}
}

// killAtFirstRename runs init and SIGKILLs it delay after the first output
// file is renamed into place (or lets it end, if it never renames).
func killAtFirstRename(t *testing.T, dir string, env []string, delay time.Duration) {
	t.Helper()
	w, err := fsnotify.NewWatcher()
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if err := w.Add(dir); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(agentBin, "init", "--output-dir", dir)
	cmd.Env = env
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ev := range w.Events {
			// A rename into place is a Create of the final name; temp
			// files are created under other names.
			if ev.Has(fsnotify.Create) && outputName.MatchString(filepath.Base(ev.Name)) {
				time.AfterFunc(delay, func() { _ = cmd.Process.Kill() })
				return
			}
		}
	}()
	_ = cmd.Wait()
	w.Close()
	<-done
}

var outputName = regexp.MustCompile(`^(K\d\d|all\.env)$`)

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
