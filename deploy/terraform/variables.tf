variable "pattern" {
  description = "init: secrets read once, the app containers wait for SUCCESS; sidecar: kept fresh (agent run), they wait for HEALTHY."
  type        = string
  default     = "sidecar"
  validation {
    condition     = contains(["sidecar", "init"], var.pattern)
    error_message = "The pattern must be \"sidecar\" or \"init\"."
  }
}

variable "agent_image" {
  description = "The agent image, e.g. 111122223333.dkr.ecr.eu-west-1.amazonaws.com/ecs-secrets-agent:1.0.0."
  type        = string
}

variable "container_definitions" {
  description = "Your task's container definitions, as you would jsonencode them for aws_ecs_task_definition (camelCase, like the ECS API)."
  type        = any
}

variable "app_container_names" {
  description = "The containers that read the secrets: each mounts the volume read-only at /run/secrets and waits for the agent."
  type        = list(string)
}

variable "secrets" {
  description = "NAME => valueFrom, as in a task definition's secrets; each becomes /run/secrets/NAME."
  type        = map(string)
}

variable "interval" {
  description = "sidecar: how often the agent polls for rotation."
  type        = string
  default     = "5m"
}

variable "signal_process" {
  description = "sidecar: a process in an app container to send SIGHUP when a secret changes (the task then needs pid_mode = \"task\", see the pid_mode output); null for none."
  type        = string
  default     = null
}

variable "feed_url" {
  description = "sidecar: the change feed (the feed_url output of a feed_watcher), as refresh.feed: the agent asks it instead of polling AWS, and polls directly while it does not answer; null for none."
  type        = string
  default     = null
}

variable "feed_token_secret_arn" {
  description = "sidecar with feed_url: ARN of the Secrets Manager secret holding the change feed's shared token (feed_watcher.token_secret_arn), injected by ECS as AGENT_FEED_TOKEN; the task's execution role must be allowed secretsmanager:GetSecretValue on it (deploy/iam/execution-role-feed-token.json). null for none."
  type        = string
  default     = null
}

variable "agent_user" {
  description = "The agent's user; to signal the app it must be the app's UID or 0. null for the image's (65532)."
  type        = string
  default     = null
}

variable "volume_name" {
  description = "The task volume that holds the files; add it to the task definition (see the volume_name output)."
  type        = string
  default     = "secrets"
}

variable "agent_log_configuration" {
  description = "The agent container's logConfiguration (camelCase, as in container definitions); null for none."
  type        = any
  default     = null
}

variable "task_role_name" {
  description = "Name of the task role to create with the agent's policy; null to create none (attach the task_role_policy_json output yourself)."
  type        = string
  default     = null
}

variable "region" {
  description = "The task's region, for Parameter Store names; null for the provider's."
  type        = string
  default     = null
}

variable "watcher" {
  description = "An agent watch service that redeploys services when a secret their task definitions name rotates; null for none."
  type = object({
    cluster            = string
    services           = list(string)
    interval           = optional(string, "5m")
    family             = optional(string, "secrets-watch")
    service_name       = optional(string, "secrets-watcher")
    role_name          = optional(string, "secrets-agent-watch")
    execution_role_arn = string
    subnets            = list(string)
    security_groups    = list(string)
    assign_public_ip   = optional(bool, false)
    log_configuration  = optional(any)
  })
  default = null
}

variable "feed_watcher" {
  description = "The change feed: two or more agent watch tasks behind an internal Network Load Balancer, reachable from agent_security_groups only (docs/FEED.md); null for none."
  type = object({
    cluster                   = string
    vpc_id                    = string
    subnets                   = list(string)
    agent_security_groups     = list(string) # the tasks whose agents use the feed
    execution_role_arn        = string
    prometheus_security_group = optional(string)           # scrapes the watchers' /metrics on 9102
    events_queue_url          = optional(string)           # feed_events.tf's queue, as eventsQueue
    token_secret_arn          = optional(string)           # the feed's token (AGENT_FEED_TOKEN), from Secrets Manager; execution_role_arn must be allowed to read it
    extra_managed_policy_arns = optional(list(string), []) # e.g. that queue's policy
    interval                  = optional(string, "1m")     # at most half the agents' refresh interval
    desired_count             = optional(number, 2)
    family                    = optional(string, "secrets-watch-feed")
    service_name              = optional(string, "secrets-feed")
    role_name                 = optional(string, "secrets-agent-watch-feed")
    log_configuration         = optional(any)
  })
  default = null
  validation {
    condition     = try(var.feed_watcher.desired_count, 2) >= 2
    error_message = "feed_watcher.desired_count must be 2 or more: while no feed answers, every agent polls AWS itself."
  }
}
