# Adds ecs-secrets-agent to a task's container definitions (init or sidecar
# pattern), builds the task role policy that `agent policy` prints for the
# same secrets, and optionally runs an `agent watch` service. See README.md.

terraform {
  required_version = ">= 1.3" # optional() attributes with defaults
  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = ">= 5.0"
    }
  }
}

data "aws_region" "current" {}
data "aws_caller_identity" "current" {}
data "aws_partition" "current" {}

locals {
  sidecar    = var.pattern == "sidecar"
  signal     = local.sidecar && var.signal_process != null
  pid_mode   = local.signal ? "task" : null
  mount_path = "/run/secrets"
  region     = var.region != null ? var.region : data.aws_region.current.name
  account    = data.aws_caller_identity.current.account_id
  partition  = data.aws_partition.current.partition

  agent_command = concat(
    local.sidecar ? ["run", "--interval", var.interval] : ["init"],
    flatten([for name, ref in var.secrets : ["--secret", "${name}=${ref}"]]),
  )

  # The sidecar asks the change feed (feed_url) instead of polling AWS.
  agent_feed = local.sidecar && var.feed_url != null
  agent_config = { for k, v in {
    onChange = local.signal ? [{ signal = { process = var.signal_process, signal = "SIGHUP" } }] : null
    refresh  = local.agent_feed ? { feed = var.feed_url } : null
  } : k => v if v != null }

  # Absent fields are left out rather than sent as null.
  agent_container = { for k, v in {
    name      = "secrets"
    image     = var.agent_image
    essential = local.sidecar # an init container must be allowed to exit
    # A sidecar that exits restarts in place: a crash of the agent must not
    # stop the app's task, and the restarted agent delivers what it owed.
    restartPolicy = local.sidecar ? { enabled = true, restartAttemptPeriod = 60 } : null
    user          = var.agent_user
    command       = local.agent_command
    environment   = !(local.signal || local.agent_feed) ? null : [{ name = "AGENT_CONFIG", value = jsonencode(local.agent_config) }]
    # The feed's token, through ECS's own injection.
    secrets                = local.agent_feed && var.feed_token_secret_arn != null ? [{ name = "AGENT_FEED_TOKEN", valueFrom = var.feed_token_secret_arn }] : null
    readonlyRootFilesystem = true
    # agent health, not --ready: an AWS brownout must not get a task with
    # good files replaced (SPEC §6 "Failing safe").
    healthCheck      = local.sidecar ? { command = ["CMD", "/agent", "health"], interval = 10, timeout = 5, retries = 3, startPeriod = 60 } : null
    mountPoints      = [{ sourceVolume = var.volume_name, containerPath = local.mount_path }]
    logConfiguration = var.agent_log_configuration
  } : k => v if v != null }

  app_dependency = { containerName = "secrets", condition = local.sidecar ? "HEALTHY" : "SUCCESS" }
  app_mount      = { sourceVolume = var.volume_name, containerPath = local.mount_path, readOnly = true }

  # An app container gets the agent's dependency and volume after its own; a
  # for expression, not a conditional, so the two kinds of container may
  # have different attributes.
  container_definitions = concat([local.agent_container], [
    for c in var.container_definitions : merge(c, { for k, v in {
      dependsOn   = concat(try(c.dependsOn, []), [local.app_dependency])
      mountPoints = concat(try(c.mountPoints, []), [local.app_mount])
    } : k => v if contains(var.app_container_names, c.name) })
  ])

  # The task role policy, as internal/policy builds it: each reference's
  # IAM resource, the kms:ViaService of the services that decrypt, and, for
  # a sidecar, secretsmanager:DescribeSecret on the secrets it polls.
  refs = [for ref in values(var.secrets) : {
    sm    = length(regexall("^arn:[^:]+:secretsmanager:", ref)) > 0
    arn   = length(regexall("^arn:", ref)) > 0
    parts = split(":", ref)
  }]
  parameters = [for r in local.refs : {
    partition = r.arn ? r.parts[1] : local.partition
    region    = r.arn ? r.parts[3] : local.region
    account   = r.arn ? r.parts[4] : local.account
    # A selector (name:3, name:label) reads the parameter itself.
    name = r.arn ? "/${trimprefix(r.parts[5], "parameter/")}" : r.parts[0]
  } if !r.sm]
  parameter_resources = [for p in local.parameters : format("arn:%s:ssm:%s:%s:parameter/%s",
    p.partition, p.region,
    length(regexall("^/aws/service/", p.name)) > 0 ? "" : p.account, # AWS's public parameters
    trimprefix(p.name, "/"),
  )]
  # /aws/reference/secretsmanager/ID reads the secret ID through Parameter Store.
  referenced_secrets = [for p in local.parameters : {
    resource = format("arn:%s:secretsmanager:%s:%s:secret:%s-??????", p.partition, p.region, p.account, trimprefix(p.name, "/aws/reference/secretsmanager/"))
    region   = p.region
    polled   = true
  } if length(regexall("^/aws/reference/secretsmanager/", p.name)) > 0]
  arn_secrets = [for r in local.refs : {
    # arn:P:secretsmanager:R:A:secret:ID[:json-key:version-stage:version-id];
    # an ID without its 6-character suffix matches it with -??????.
    resource = length(regexall(".-[A-Za-z0-9]{6}$", r.parts[6])) > 0 ? join(":", slice(r.parts, 0, 7)) : "${join(":", slice(r.parts, 0, 7))}-??????"
    region   = r.parts[3]
    polled   = length(r.parts) < 10 || try(r.parts[9], "") == "" # a version id never moves
  } if r.sm]
  secrets = concat(local.referenced_secrets, local.arn_secrets)

  secret_resources   = sort(distinct([for s in local.secrets : s.resource]))
  describe_resources = local.sidecar ? sort(distinct([for s in local.secrets : s.resource if s.polled])) : []
  via_ssm = sort(distinct(compact(flatten([for p in local.parameters : length(regexall("^/aws/(service|reference/secretsmanager)/", p.name)) > 0 ? [] :
  [format("ssm.%s.amazonaws.com", p.region), length(regexall("^cn-", p.region)) > 0 ? format("ssm.%s.amazonaws.com.cn", p.region) : ""]]))))
  via_sm = sort(distinct(compact(flatten([for s in local.secrets :
  [format("secretsmanager.%s.amazonaws.com", s.region), length(regexall("^cn-", s.region)) > 0 ? format("secretsmanager.%s.amazonaws.com.cn", s.region) : ""]]))))

  same_secrets = length(local.describe_resources) == length(local.secret_resources)
  statements = concat(
    length(local.parameter_resources) > 0 ? [{ Sid = "ReadParameters", Effect = "Allow", Action = ["ssm:GetParameters"], Resource = sort(distinct(local.parameter_resources)) }] : [],
    length(local.secret_resources) > 0 && local.same_secrets ? [{ Sid = "ReadSecrets", Effect = "Allow", Action = ["secretsmanager:DescribeSecret", "secretsmanager:GetSecretValue"], Resource = local.secret_resources }] : [],
    length(local.secret_resources) > 0 && !local.same_secrets ? [{ Sid = "ReadSecrets", Effect = "Allow", Action = ["secretsmanager:GetSecretValue"], Resource = local.secret_resources }] : [],
    length(local.describe_resources) > 0 && !local.same_secrets ? [{ Sid = "PollSecrets", Effect = "Allow", Action = ["secretsmanager:DescribeSecret"], Resource = local.describe_resources }] : [],
    # Needed only for customer managed keys; a reference does not name the
    # key, so Resource is * limited by the service that decrypts.
    length(local.via_ssm) > 0 ? [{ Sid = "DecryptViaSSM", Effect = "Allow", Action = ["kms:Decrypt"], Resource = ["*"], Condition = { StringEquals = { "kms:ViaService" = local.via_ssm } } }] : [],
    length(local.via_sm) > 0 ? [{ Sid = "DecryptViaSecretsManager", Effect = "Allow", Action = ["kms:Decrypt"], Resource = ["*"], Condition = { StringEquals = { "kms:ViaService" = local.via_sm } } }] : [],
  )
  task_role_policy_json = jsonencode({ Version = "2012-10-17", Statement = local.statements })

  trust_policy_json = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Sid       = "EcsTasksAssumeRole"
      Effect    = "Allow"
      Principal = { Service = "ecs-tasks.amazonaws.com" }
      Action    = ["sts:AssumeRole"]
      Condition = {
        ArnLike      = { "aws:SourceArn" = [format("arn:%s:ecs:%s:%s:*", local.partition, local.region, local.account)] }
        StringEquals = { "aws:SourceAccount" = [local.account] }
      }
    }]
  })
}

resource "aws_iam_role" "task" {
  count              = var.task_role_name == null ? 0 : 1
  name               = var.task_role_name
  assume_role_policy = local.trust_policy_json
}

resource "aws_iam_role_policy" "task" {
  count  = var.task_role_name == null ? 0 : 1
  name   = "secrets"
  role   = aws_iam_role.task[0].id
  policy = local.task_role_policy_json
}
