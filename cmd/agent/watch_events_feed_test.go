package main

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"os/exec"
	"regexp"
	"testing"
	"time"

	"github.com/ecs-secrets-agent/ecs-secrets-agent/internal/feed"
)

// A change event makes the feed poll at once: a held request learns of a
// rotation within seconds although the watcher polls every 5 minutes.
func TestWatchEventMakesFeedPollNow(t *testing.T) {
	// Built on fx-events alone, the watcher serves no feed yet; merged with
	// the feed server (fx-server), this runs.
	if help, _ := exec.Command(agentBin, "watch", "--help").CombinedOutput(); !bytes.Contains(help, []byte("-feed-addr")) {
		t.Skip("agent watch has no --feed-addr yet")
	}
	f := newFixture(t)
	f.fake.PutParameter(region, "/db", f.value("db"), true)
	queue := f.fake.CreateQueue("changes")
	cmd := exec.Command(agentBin, "watch", "--feed-addr", "127.0.0.1:0", "--interval", "5m", "--metrics-addr", "127.0.0.1:0", "--events-queue", queue)
	cmd.Env = f.fake.Env(region)
	w := startAgentCmd(t, cmd)
	var feedAddr string
	eventually(t, "the feed's address", 10*time.Second, func() bool {
		m := regexp.MustCompile(`"msg":"serving the change feed","addr":"([^"]+)"`).FindStringSubmatch(w.logs())
		if m != nil {
			feedAddr = m[1]
		}
		return m != nil
	})
	ask := func(version, wait string) feed.Response {
		body, _ := json.Marshal(feed.Request{Region: region, Wait: wait, Refs: map[string]string{"/db": version}})
		resp, err := http.Post("http://"+feedAddr+feed.Path, "application/json", bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		var r feed.Response
		if err := json.Unmarshal(b, &r); err != nil {
			t.Fatalf("%d %s", resp.StatusCode, b)
		}
		return r
	}
	var v1 string
	eventually(t, "the first read", 10*time.Second, func() bool { v1 = ask("", "0s").Refs["/db"].Version; return v1 != "" })
	got := make(chan feed.Response, 1)
	go func() { got <- ask(v1, "60s") }()
	polls := f.fake.Calls("GetParameters")
	f.fake.PutParameter(region, "/db", f.value("db2"), true)
	start := time.Now()
	f.fake.SendMessage(queue, `{"detail-type":"Parameter Store Change","source":"aws.ssm","region":"`+region+`","detail":{"operation":"Update","name":"/db"}}`)
	select {
	case r := <-got:
		// One poll, of /db, after the event.
		if len(r.Changed) != 1 || r.Changed[0] != "/db" || r.Refs["/db"].Version == v1 {
			t.Fatalf("answer %+v", r)
		}
		if n := f.fake.Calls("GetParameters"); n != polls+1 {
			t.Errorf("GetParameters %d → %d, want one poll for the event", polls, n)
		}
		t.Logf("told %s after the event", time.Since(start))
	case <-time.After(20 * time.Second):
		t.Fatalf("no answer 20 s after the event\n%s", w.logs())
	}
	w.stop(t)
	assertNoSecrets(t, "stderr", w.logs(), f.secrets)
}
