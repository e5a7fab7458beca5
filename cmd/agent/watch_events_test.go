package main

import (
	"encoding/json"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// `agent watch --events-queue` against the wire-level fake's SQS: the
// real binary takes the events with its container credentials, deletes
// every message (malformed ones too), counts them by kind, never logs a
// body, and stops at once on SIGTERM while a receive is held.
func TestWatchTakesChangeEvents(t *testing.T) {
	f := newFixture(t)
	f.fake.PutParameter(region, "/db", f.value("db"), true)
	f.fake.CreateService(region, "prod", "web", taskDef(f, "web", "/db"))
	queue := f.fake.CreateQueue("secret-changes")
	leaked := f.value("in-a-message")
	f.fake.SendMessage(queue, `{"version":"0","id":"a","detail-type":"Parameter Store Change","source":"aws.ssm","account":"111122223333",`+
		`"region":"`+region+`","resources":[],"detail":{"operation":"Update","name":"/db","type":"SecureString"}}`)
	f.fake.SendMessage(queue, `{"detail-type":"AWS API Call via CloudTrail","source":"aws.secretsmanager","region":"`+region+`",`+
		`"detail":{"eventName":"PutSecretValue","requestParameters":{"secretId":"prod/api","secretString":`+jsonQuote(leaked)+`}}}`)
	f.fake.SendMessage(queue, "not an event: "+leaked)

	cmd := exec.Command(agentBin, "watch", "--cluster", "prod", "--service", "web", "--dry-run", "--interval", "1m",
		"--metrics-addr", "127.0.0.1:0", "--events-queue", queue)
	cmd.Env = append(f.fake.Env(region), `AGENT_CONFIG={"feedAddr":"127.0.0.1:0"}`)
	w := startAgentCmd(t, cmd)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("agent logs:\n%s", w.logs())
		}
	})
	eventually(t, "three messages taken and deleted", 30*time.Second, func() bool {
		return f.fake.QueueLength(queue) == 0 && w.metric(t, `ecs_secrets_agent_events_received_total{kind="malformed"}`) == 1
	})
	for kind, want := range map[string]float64{"parameter": 1, "secret": 1, "ignored": 0, "malformed": 1} {
		if got := w.metric(t, `ecs_secrets_agent_events_received_total{kind="`+kind+`"}`); got != want {
			t.Errorf("received %s: %v, want %v", kind, got, want)
		}
	}
	if got := w.metric(t, `ecs_secrets_agent_events_errors_total{reason="receive"}`); got != 0 {
		t.Errorf("receive errors: %v", got)
	}
	if got := w.metric(t, `ecs_secrets_agent_api_requests_total{operation="DeleteMessageBatch",outcome="success",service="SQS"}`); got < 1 {
		t.Errorf("DeleteMessageBatch not in the API metrics: %v", got)
	}
	// The first receive took all three; the second is held.
	eventually(t, "the next long poll", 30*time.Second, func() bool { return f.fake.Calls("ReceiveMessage") >= 2 })
	if d := w.stop(t); d > 5*time.Second {
		t.Errorf("took %s to stop with a receive held", d)
	}
	if n := f.fake.SignatureFailures(); n != 0 {
		t.Errorf("%d requests failed the SigV4 check", n)
	}
	logs := w.logs()
	assertNoSecrets(t, "stderr", logs, f.secrets)
	for _, want := range []string{`"msg":"taking change events","component":"events","queue":"` + queue + `","region":"` + region + `"`,
		`"msg":"deleting a malformed event message","component":"events","message_id":"`} {
		if !strings.Contains(logs, want) {
			t.Errorf("logs lack %s:\n%s", want, logs)
		}
	}
}

func jsonQuote(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

func TestWatchEventsQueueUsage(t *testing.T) {
	f := newFixture(t)
	env := f.fake.Env(region)
	base := []string{"watch", "--cluster", "prod", "--service", "web", "--metrics-addr", "127.0.0.1:0"}
	for _, tc := range []struct {
		name, config, queue, want string
	}{
		{"no feed", "", "https://sqs.us-east-1.amazonaws.com/111122223333/q",
			"watch: --events-queue needs --feed-addr (or feedAddr): change events only make the feed poll sooner"},
		{"not a queue URL", `{"feedAddr":"127.0.0.1:0"}`, "sqs.us-east-1.amazonaws.com/q",
			`events queue "sqs.us-east-1.amazonaws.com/q" is not an SQS queue URL (https://sqs.REGION.amazonaws.com/ACCOUNT/NAME)`},
		{"in the config file", `{"feedAddr":"127.0.0.1:0","eventsQueue":"https://sqs.us-east-1.amazonaws.com/1/q/x"}`, "",
			`events queue "https://sqs.us-east-1.amazonaws.com/1/q/x" is not an SQS queue URL`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := env
			if tc.config != "" {
				e = append(e, "AGENT_CONFIG="+tc.config)
			}
			args := base
			if tc.queue != "" {
				args = append(args[:len(args):len(args)], "--events-queue", tc.queue)
			}
			r := runAgent(t, e, nil, args...)
			// Plain from a usage error, JSON-quoted from the log.
			if r.code != 2 || !strings.Contains(strings.ReplaceAll(r.stderr, `\"`, `"`), tc.want) {
				t.Fatalf("exit %d, want 2 with %q:\n%s", r.code, tc.want, r.stderr)
			}
		})
	}
	if n := f.fake.Calls("ReceiveMessage"); n != 0 {
		t.Fatalf("%d receives by a watcher that should not have started", n)
	}
}
