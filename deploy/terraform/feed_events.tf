# Change events for the change feed (docs/FEED.md, "Change events"): an SQS
# queue that two EventBridge rules fill with Parameter Store and Secrets
# Manager changes, for `agent watch --feed-addr ... --events-queue URL`, and
# a managed policy for the feed watcher's task role. In the provider's
# region: rules only see their own region's events.

variable "events_queue" {
  description = "Create the change events queue, its EventBridge rules and the watcher's policy; null for none."
  type = object({
    name                      = optional(string, "ecs-secrets-agent-changes")
    message_retention_seconds = optional(number, 3600)
  })
  default = null
}

locals {
  events_on         = var.events_queue != null
  events_queue_name = local.events_on ? var.events_queue.name : ""
  events_region     = data.aws_region.current.name
  events_queue_arn  = format("arn:%s:sqs:%s:%s:%s", local.partition, local.events_region, local.account, local.events_queue_name)
  events_rule_arn   = format("arn:%s:events:%s:%s:rule/%s-", local.partition, local.events_region, local.account, local.events_queue_name)

  # internal/events.Rules; the test holds these to it.
  events_parameter_pattern = {
    source        = ["aws.ssm"]
    "detail-type" = ["Parameter Store Change"]
    detail        = { operation = ["Create", "Update", "Delete", "LabelParameterVersion"] }
  }
  events_secret_pattern = {
    source        = ["aws.secretsmanager"]
    "detail-type" = ["AWS API Call via CloudTrail", "AWS Service Event via CloudTrail"]
    detail = {
      eventSource = ["secretsmanager.amazonaws.com"]
      eventName = ["PutSecretValue", "UpdateSecretVersionStage", "RotateSecret", "UpdateSecret", "RestoreSecret",
      "DeleteSecret", "CancelRotateSecret", "RotationSucceeded"]
      errorCode = [{ exists = false }]
    }
  }

  # Only the two rules may send to the queue.
  events_queue_policy_json = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Sid       = "EventBridgeRules"
      Effect    = "Allow"
      Principal = { Service = "events.amazonaws.com" }
      Action    = "sqs:SendMessage"
      Resource  = local.events_queue_arn
      Condition = { ArnEquals = { "aws:SourceArn" = ["${local.events_rule_arn}parameters", "${local.events_rule_arn}secrets"] } }
    }]
  })
  # What the watcher calls (DeleteMessageBatch is authorized as DeleteMessage).
  events_consumer_policy_json = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Sid      = "TakeChangeEvents"
      Effect   = "Allow"
      Action   = ["sqs:DeleteMessage", "sqs:GetQueueAttributes", "sqs:ReceiveMessage"]
      Resource = local.events_queue_arn
    }]
  })
}

resource "aws_sqs_queue" "events" {
  count                      = local.events_on ? 1 : 0
  name                       = local.events_queue_name
  receive_wait_time_seconds  = 20
  visibility_timeout_seconds = 60
  message_retention_seconds  = var.events_queue.message_retention_seconds
  sqs_managed_sse_enabled    = true
}

resource "aws_sqs_queue_policy" "events" {
  count     = local.events_on ? 1 : 0
  queue_url = aws_sqs_queue.events[0].id
  policy    = local.events_queue_policy_json
}

resource "aws_cloudwatch_event_rule" "events_parameters" {
  count         = local.events_on ? 1 : 0
  name          = "${local.events_queue_name}-parameters"
  description   = "Parameter Store changes, to the change feed's queue"
  event_pattern = jsonencode(local.events_parameter_pattern)
}

resource "aws_cloudwatch_event_rule" "events_secrets" {
  count         = local.events_on ? 1 : 0
  name          = "${local.events_queue_name}-secrets"
  description   = "Secrets Manager changes (CloudTrail), to the change feed's queue"
  event_pattern = jsonencode(local.events_secret_pattern)
}

resource "aws_cloudwatch_event_target" "events_parameters" {
  count     = local.events_on ? 1 : 0
  rule      = aws_cloudwatch_event_rule.events_parameters[0].name
  target_id = "change-feed-queue"
  arn       = aws_sqs_queue.events[0].arn
}

resource "aws_cloudwatch_event_target" "events_secrets" {
  count     = local.events_on ? 1 : 0
  rule      = aws_cloudwatch_event_rule.events_secrets[0].name
  target_id = "change-feed-queue"
  arn       = aws_sqs_queue.events[0].arn
}

resource "aws_iam_policy" "events_consumer" {
  count       = local.events_on ? 1 : 0
  name        = "${local.events_queue_name}-consumer"
  description = "Take change events from the change feed's queue: attach to the feed watcher's task role"
  policy      = local.events_consumer_policy_json
}

output "events_queue_url" {
  description = "agent watch --events-queue, when var.events_queue is set."
  value       = try(aws_sqs_queue.events[0].id, null)
}

output "events_queue_arn" {
  description = "The change events queue, when var.events_queue is set."
  value       = try(aws_sqs_queue.events[0].arn, null)
}

output "events_consumer_policy_arn" {
  description = "A managed policy for the feed watcher's task role, when var.events_queue is set."
  value       = try(aws_iam_policy.events_consumer[0].arn, null)
}
