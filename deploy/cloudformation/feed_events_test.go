package cloudformation

import (
	"encoding/json"
	"fmt"
	"reflect"
	"testing"

	"github.com/ecs-secrets-agent/ecs-secrets-agent/internal/events"
)

// TestFeedEventsTemplate evaluates feed-events.json: its rules carry the
// patterns internal/events holds to what the watcher parses, and target
// the queue; only those rules may send to the queue; the managed policy
// allows the watcher's calls on that queue and nothing else.
func TestFeedEventsTemplate(t *testing.T) {
	tmpl := readTemplate(t, "feed-events.json")
	stack := evaluate(t, tmpl, "eu-west-1", map[string]string{"QueueName": "changes"})
	const (
		queueURL = "https://sqs.eu-west-1.amazonaws.com/111122223333/Queue"
		queueARN = "arn:aws:sqs:eu-west-1:111122223333:Queue"
	)

	q := stack.properties(t, "Queue", "AWS::SQS::Queue")
	if got := jsonText(q); got != `{"MessageRetentionPeriod":"3600","QueueName":"changes","ReceiveMessageWaitTimeSeconds":20,"SqsManagedSseEnabled":true,"VisibilityTimeout":60}` {
		t.Errorf("queue %s", got)
	}
	// Long polling on the queue too, as the watcher asks for it.
	if fmt.Sprint(q["ReceiveMessageWaitTimeSeconds"]) != fmt.Sprint(events.WaitTimeSeconds) {
		t.Errorf("ReceiveMessageWaitTimeSeconds %v, want %d", q["ReceiveMessageWaitTimeSeconds"], events.WaitTimeSeconds)
	}

	var ruleARNs []any
	for id, name := range map[string]string{"ParameterChangesRule": "parameters", "SecretChangesRule": "secrets"} {
		r := stack.properties(t, id, "AWS::Events::Rule")
		var want any
		if err := json.Unmarshal([]byte(events.Rules[name]), &want); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(r["EventPattern"], want) {
			t.Errorf("%s pattern:\ngot  %s\nwant %s", id, jsonText(r["EventPattern"]), jsonText(want))
		}
		if got := jsonText(r["Targets"]); got != `[{"Arn":"`+queueARN+`","Id":"change-feed-queue"}]` {
			t.Errorf("%s targets %s", id, got)
		}
		if r["State"] != "ENABLED" || r["Name"] != "changes-"+name {
			t.Errorf("%s: state %v, name %v", id, r["State"], r["Name"])
		}
		ruleARNs = append(ruleARNs, "arn:aws:events:eu-west-1:111122223333:rule/"+id)
	}
	if len(events.Rules) != 2 {
		t.Errorf("internal/events has %d rules, the template 2", len(events.Rules))
	}

	qp := stack.properties(t, "QueuePolicy", "AWS::SQS::QueuePolicy")
	wantQP := map[string]any{
		"Queues": []any{queueURL},
		"PolicyDocument": map[string]any{"Version": "2012-10-17", "Statement": []any{map[string]any{
			"Sid": "EventBridgeRules", "Effect": "Allow",
			"Principal": map[string]any{"Service": "events.amazonaws.com"},
			"Action":    "sqs:SendMessage", "Resource": queueARN,
			"Condition": map[string]any{"ArnEquals": map[string]any{"aws:SourceArn": []any{ruleARNs[0], ruleARNs[1]}}},
		}}},
	}
	if ruleARNs[0].(string) > ruleARNs[1].(string) {
		wantQP["PolicyDocument"].(map[string]any)["Statement"].([]any)[0].(map[string]any)["Condition"] =
			map[string]any{"ArnEquals": map[string]any{"aws:SourceArn": []any{ruleARNs[1], ruleARNs[0]}}}
	}
	if !reflect.DeepEqual(qp, wantQP) {
		t.Errorf("queue policy:\ngot  %s\nwant %s", jsonText(qp), jsonText(wantQP))
	}

	// What the watcher calls: ReceiveMessage, DeleteMessageBatch (authorized
	// as sqs:DeleteMessage); GetQueueAttributes for operators' checks.
	cp := stack.properties(t, "ConsumerPolicy", "AWS::IAM::ManagedPolicy")
	if got := jsonText(cp["PolicyDocument"]); got != `{"Statement":[{"Action":["sqs:DeleteMessage","sqs:GetQueueAttributes","sqs:ReceiveMessage"],`+
		`"Effect":"Allow","Resource":"`+queueARN+`","Sid":"TakeChangeEvents"}],"Version":"2012-10-17"}` {
		t.Errorf("consumer policy %s", got)
	}

	outputs, err := stack.eval(tmpl["Outputs"], nil)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]any{}
	for k, o := range outputs.(map[string]any) {
		got[k] = o.(map[string]any)["Value"]
	}
	want := map[string]any{"QueueUrl": queueURL, "QueueArn": queueARN, "ConsumerPolicyArn": "arn:aws:iam::111122223333:policy/ConsumerPolicy"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("outputs %v, want %v", got, want)
	}
	if len(stack.resources) != 5 {
		t.Errorf("%d resources, want 5", len(stack.resources))
	}
}
