package refresh

import (
	"context"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"testing/synctest"
	"time"

	"github.com/ecs-secrets-agent/ecs-secrets-agent/internal/action"
	"github.com/ecs-secrets-agent/ecs-secrets-agent/internal/config"
)

// TestLoopDeliveryProperties drives the loop through random sequences of
// rotations, render failures, action failures, configuration reloads and
// stops under fake time, and checks after every step:
//   - no action without a change: each run is a retry of the snapshot the
//     action failed on, or a snapshot that differs from the last one it
//     was run on;
//   - every change is acted on at least once after a successful render:
//     once the loop is idle, each action's last successful run was on the
//     values the files hold;
//   - files hold the newest rendered values, never a mix, whenever the
//     render is not failing;
//   - no file of a removed secret.
func TestLoopDeliveryProperties(t *testing.T) {
	for seed := range uint64(40) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) { runProperty(t, seed) })
		})
	}
}

const (
	propAB  = `{"secrets":[{"name":"A","valueFrom":"/a"},{"name":"B","valueFrom":"/b"}],"refresh":{"interval":"10s","jitter":"2s","maxStale":"30s"}}`
	propABC = `{"secrets":[{"name":"A","valueFrom":"/a"},{"name":"B","valueFrom":"/b"},{"name":"C","valueFrom":"/c"}],"refresh":{"interval":"10s","jitter":"2s","maxStale":"30s"}}`
)

func runProperty(t *testing.T, seed uint64) {
	rnd := rand.New(rand.NewPCG(seed, 1))
	rec := newRecorder(2)
	h := newHarnessWith(t, propAB, map[string]string{"A": "a0", "B": "b0", "C": "c0"}, 0.5, rec.factory)
	cfgCh := make(chan *config.Settings)
	outCh := make(chan struct{}, 1)
	if err := h.loop.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	start := func() {
		ctx, cancel = context.WithCancel(context.Background())
		done = make(chan struct{})
		go func() { _ = h.loop.Run(ctx, Events{Config: cfgCh, Output: outCh}); close(done) }()
	}
	start()
	defer func() { cancel(); <-done }()

	hasC, blocked, touched := false, map[string]bool{}, map[string]bool{}
	reloaded := map[int]bool{} // by action: a reload since its last run
	seen := map[int]int{}      // runs of each action already checked
	var trace []string
	for step := range 30 {
		switch k := rnd.IntN(7); k {
		case 0, 1:
			name := []string{"A", "B", "C"}[rnd.IntN(3)]
			v := fmt.Sprintf("%s%d", name, step)
			h.src.rotate(name, v)
			trace = append(trace, "rotate "+name)
		case 2:
			name := []string{"A", "B"}[rnd.IntN(2)]
			if blocked[name] {
				h.unblock(t, name)
			} else if _, err := os.Stat(filepath.Join(h.out, name)); err == nil {
				h.block(t, name)
			} else {
				continue
			}
			blocked[name] = !blocked[name]
			touched[name] = true
			select { // what fsnotify would say
			case outCh <- struct{}{}:
			default:
			}
			trace = append(trace, fmt.Sprintf("block %s=%v", name, blocked[name]))
		case 3:
			i := rnd.IntN(2)
			f := rnd.IntN(2) == 0
			rec.setFail(i, f)
			trace = append(trace, fmt.Sprintf("fail %d=%v", i, f))
		case 4:
			hasC = !hasC
			cfg := propAB
			if hasC {
				cfg = propABC
			}
			cfgCh <- reloadCfg(t, h, cfg)
			reloaded[0], reloaded[1] = true, true
			trace = append(trace, fmt.Sprintf("reload C=%v", hasC))
		case 5:
			cancel()
			<-done
			start()
			trace = append(trace, "stop+start")
		case 6:
			trace = append(trace, "wait")
		}
		advance(time.Duration(rnd.IntN(25)) * time.Second)
		// Checked with Run stopped: the check reads the loop's state.
		cancel()
		<-done
		checkProperties(t, h, rec, seen, hasC, touched, reloaded, trace)
		start()
	}
	// Everything healthy again: the last change must reach every action.
	for name := range blocked {
		if blocked[name] {
			h.unblock(t, name)
		}
	}
	rec.setFail(0, false)
	rec.setFail(1, false)
	advance(2 * time.Minute)
	cancel()
	<-done
	defer start() // for the deferred stop
	clear(touched)
	checkProperties(t, h, rec, seen, hasC, touched, reloaded, append(trace, "heal"))
	if h.loop.pending != nil || h.loop.undelivered {
		t.Fatalf("not idle after healing: pending=%v undelivered=%v\ntrace %v", h.loop.pending != nil, h.loop.undelivered, trace)
	}
	for i := range 2 {
		if rec.count(i) == 0 {
			continue
		}
		last := rec.last(i)
		for name, r := range h.loop.have {
			if got := last.Values[name]; !got.Value.Equal(r.Value) {
				t.Errorf("action %d last ran on %s=%q, files hold %q\ntrace %v", i, name, got.Value.Bytes(), r.Value.Bytes(), trace)
			}
		}
	}
}

// touched names were replaced behind the loop's back: they may differ until
// a render repairs them. After a reload, a run may repeat an earlier state
// (a secret removed and added back changed the files in between).
func checkProperties(t *testing.T, h *harness, rec *recorder, seen map[int]int, hasC bool, touched map[string]bool, reloaded map[int]bool, trace []string) {
	t.Helper()
	rec.mu.Lock()
	defer rec.mu.Unlock()
	for i := range 2 {
		runs := rec.runs[i]
		for k := max(seen[i], 1); k < len(runs); k++ {
			prev, cur := runs[k-1], runs[k]
			same := reflect.ValueOf(prev.Values).UnsafePointer() == reflect.ValueOf(cur.Values).UnsafePointer()
			if !same && !reloaded[i] && reflect.DeepEqual(valuesOf(prev), valuesOf(cur)) && len(prev.Settings.Secrets) == len(cur.Settings.Secrets) {
				t.Fatalf("action %d run %d on a snapshot equal to the previous one: an action without a change\ntrace %v", i, k, trace)
			}
		}
		if seen[i] == 0 && !reloaded[i] && len(runs) > 0 && reflect.DeepEqual(valuesOf(runs[0]), map[string]string{"A": "a0", "B": "b0"}) && len(runs[0].Settings.Secrets) == 2 {
			t.Fatalf("action %d first ran on the values of the first render: an action without a change\ntrace %v", i, trace)
		}
		if len(runs) > seen[i] {
			reloaded[i] = false
		}
		seen[i] = len(runs)
	}
	if h.loop.renderErr == "" {
		for name, r := range h.loop.have {
			b, err := os.ReadFile(filepath.Join(h.out, name))
			if err == nil && string(b) == string(r.Value.Bytes()) {
				delete(touched, name)
				continue
			}
			if !touched[name] {
				t.Fatalf("render not failing, but file %s = %q (%v), newest value %q\ntrace %v", name, b, err, r.Value.Bytes(), trace)
			}
		}
	}
	if !hasC {
		if fi, err := os.Lstat(filepath.Join(h.out, "C")); err == nil && fi.Mode().Type() != fs.ModeDir {
			t.Fatalf("file of removed secret C still there\ntrace %v", trace)
		}
	}
}

func valuesOf(c action.Change) map[string]string {
	out := map[string]string{}
	for name, r := range c.Values {
		out[name] = string(r.Value.Bytes())
	}
	return out
}
