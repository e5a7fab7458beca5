package terraform

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2"

	"github.com/ecs-secrets-agent/ecs-secrets-agent/internal/events"
)

var eventsResources = []string{
	"aws_sqs_queue.events", "aws_sqs_queue_policy.events",
	"aws_cloudwatch_event_rule.events_parameters", "aws_cloudwatch_event_rule.events_secrets",
	"aws_cloudwatch_event_target.events_parameters", "aws_cloudwatch_event_target.events_secrets",
	"aws_iam_policy.events_consumer",
}

// TestModuleEventsQueue evaluates feed_events.tf: rules with the patterns
// internal/events holds to what the watcher parses, each targeting the
// queue; only those rules may send to it; the managed policy allows the
// watcher's calls on that queue alone. Without events_queue, nothing.
func TestModuleEventsQueue(t *testing.T) {
	m := loadModule(t)
	ev := m.evaluate(t, "eu-west-1", userContainers+`
secrets = { A = "/a" }
events_queue = { name = "changes" }
`)
	for _, r := range eventsResources {
		if n := ev.resourceInt(t, r, "count"); n != 1 {
			t.Errorf("%s count %d, want 1", r, n)
		}
	}
	const queueARN = "arn:aws:sqs:eu-west-1:111122223333:changes"

	const q = "aws_sqs_queue.events"
	if got := ev.resource(t, q, "name").AsString(); got != "changes" {
		t.Errorf("queue name %q", got)
	}
	for attr, want := range map[string]int{"receive_wait_time_seconds": events.WaitTimeSeconds, "visibility_timeout_seconds": 60, "message_retention_seconds": 3600} {
		if got := ev.resourceInt(t, q, attr); got != want {
			t.Errorf("%s.%s = %d, want %d", q, attr, got, want)
		}
	}
	if !ev.resource(t, q, "sqs_managed_sse_enabled").True() {
		t.Errorf("%s: not encrypted", q)
	}

	var ruleARNs []any
	for _, name := range []string{"parameters", "secrets"} {
		rule := "aws_cloudwatch_event_rule.events_" + name
		ruleName := ev.resource(t, rule, "name").AsString()
		if ruleName != "changes-"+name {
			t.Errorf("%s name %q", rule, ruleName)
		}
		ruleARNs = append(ruleARNs, "arn:aws:events:eu-west-1:111122223333:rule/"+ruleName)
		got, want := decodeJSON(t, ev.resource(t, rule, "event_pattern").AsString()), decodeJSON(t, events.Rules[name])
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s pattern:\ngot  %s\nwant %s", rule, jsonText(t, got), jsonText(t, want))
		}
		target := "aws_cloudwatch_event_target.events_" + name
		if got := traversal(t, m.resources[target].Attributes["rule"].Expr); got != rule+"[0].name" {
			t.Errorf("%s.rule = %s", target, got)
		}
		if got := traversal(t, m.resources[target].Attributes["arn"].Expr); got != q+"[0].arn" {
			t.Errorf("%s.arn = %s", target, got)
		}
	}
	if len(events.Rules) != 2 {
		t.Errorf("internal/events has %d rules, the module 2", len(events.Rules))
	}

	wantQP := map[string]any{"Version": "2012-10-17", "Statement": []any{map[string]any{
		"Sid": "EventBridgeRules", "Effect": "Allow",
		"Principal": map[string]any{"Service": "events.amazonaws.com"},
		"Action":    "sqs:SendMessage", "Resource": queueARN,
		"Condition": map[string]any{"ArnEquals": map[string]any{"aws:SourceArn": ruleARNs}},
	}}}
	if got := decodeJSON(t, ev.resource(t, "aws_sqs_queue_policy.events", "policy").AsString()); !reflect.DeepEqual(got, wantQP) {
		t.Errorf("queue policy:\ngot  %s\nwant %s", jsonText(t, got), jsonText(t, wantQP))
	}
	if got := traversal(t, m.resources["aws_sqs_queue_policy.events"].Attributes["queue_url"].Expr); got != q+"[0].id" {
		t.Errorf("queue policy's queue_url = %s", got)
	}

	// What the watcher calls: ReceiveMessage, DeleteMessageBatch (authorized
	// as sqs:DeleteMessage); GetQueueAttributes for operators' checks.
	got := ev.resource(t, "aws_iam_policy.events_consumer", "policy").AsString()
	b, _ := json.Marshal(decodeJSON(t, got))
	if want := `{"Statement":[{"Action":["sqs:DeleteMessage","sqs:GetQueueAttributes","sqs:ReceiveMessage"],"Effect":"Allow","Resource":"` +
		queueARN + `","Sid":"TakeChangeEvents"}],"Version":"2012-10-17"}`; string(b) != want {
		t.Errorf("consumer policy %s", b)
	}

	off := m.evaluate(t, "eu-west-1", userContainers+`secrets = { A = "/a" }`)
	for _, r := range eventsResources {
		if n := off.resourceInt(t, r, "count"); n != 0 {
			t.Errorf("without events_queue: %s count %d, want 0", r, n)
		}
	}
}

// traversal prints a reference such as aws_sqs_queue.events[0].arn.
func traversal(t *testing.T, e hcl.Expression) string {
	t.Helper()
	vars := e.Variables()
	if len(vars) != 1 {
		t.Fatalf("expression refers to %d things, want 1", len(vars))
	}
	var s strings.Builder
	for _, step := range vars[0] {
		switch step := step.(type) {
		case hcl.TraverseRoot:
			s.WriteString(step.Name)
		case hcl.TraverseAttr:
			s.WriteString("." + step.Name)
		case hcl.TraverseIndex:
			s.WriteString("[" + step.Key.AsBigFloat().String() + "]")
		}
	}
	return s.String()
}
