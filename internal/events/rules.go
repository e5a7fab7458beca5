package events

// Rules are the event patterns of the EventBridge rules that fill the
// queue, by rule: together they match every event Parse takes as a change,
// and few others (a failed call, a read, another service's event never
// reach the queue; an API call named RotationSucceeded, which does not
// exist, would). deploy/cloudformation/feed-events.json and
// deploy/terraform/feed_events.tf carry copies; their tests hold them to
// these, and rules_test.go holds these to Parse.
var Rules = map[string]string{
	"parameters": `{
  "source": ["aws.ssm"],
  "detail-type": ["Parameter Store Change"],
  "detail": {"operation": ["Create", "Update", "Delete", "LabelParameterVersion"]}
}`,
	"secrets": `{
  "source": ["aws.secretsmanager"],
  "detail-type": ["AWS API Call via CloudTrail", "AWS Service Event via CloudTrail"],
  "detail": {
    "eventSource": ["secretsmanager.amazonaws.com"],
    "eventName": ["PutSecretValue", "UpdateSecretVersionStage", "RotateSecret", "UpdateSecret", "RestoreSecret",
      "DeleteSecret", "CancelRotateSecret", "RotationSucceeded"],
    "errorCode": [{"exists": false}]
  }
}`,
}
