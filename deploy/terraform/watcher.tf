# The rotation watcher: a one-task service of its own (agent watch) that
# redeploys the watched services when a secret their task definitions name
# rotates. One task, and a deployment stops the old one before starting the
# new: two watchers would each redeploy.

locals {
  watch_services = var.watcher == null ? [] : sort(distinct(var.watcher.services))
  watch_cluster  = var.watcher == null ? "" : var.watcher.cluster
  watch_command = var.watcher == null ? [] : concat(
    ["watch", "--cluster", var.watcher.cluster],
    flatten([for s in var.watcher.services : ["--service", s]]),
    ["--interval", var.watcher.interval],
  )
  watch_container = var.watcher == null ? null : { for k, v in {
    name                   = "watch"
    image                  = var.agent_image
    essential              = true
    command                = local.watch_command
    readonlyRootFilesystem = true
    healthCheck            = { command = ["CMD", "/agent", "health"], interval = 10, timeout = 5, retries = 3, startPeriod = 60 }
    logConfiguration       = var.watcher.log_configuration
  } : k => v if v != null }

  # What `agent policy --command watch` prints for the cluster and services.
  watch_lock_prefix = format("arn:%s:ssm:%s:%s:parameter/ecs-secrets-agent/locks/%s/", local.partition, local.region, local.account, local.watch_cluster)
  watch_policy_json = jsonencode({
    Version = "2012-10-17"
    Statement = [
      { Sid = "WatchServices", Effect = "Allow", Action = ["ecs:DescribeServices", "ecs:UpdateService"],
      Resource = [for s in local.watch_services : format("arn:%s:ecs:%s:%s:service/%s/%s", local.partition, local.region, local.account, local.watch_cluster, s)] },
      { Sid = "WatchTaskDefinitions", Effect = "Allow", Action = ["ecs:DescribeTaskDefinition"], Resource = ["*"] },
      { Sid = "WatchParameters", Effect = "Allow", Action = ["ssm:GetParameters"], Resource = [format("arn:%s:ssm:%s:%s:parameter/*", local.partition, local.region, local.account)] },
      { Sid = "WatchSecrets", Effect = "Allow", Action = ["secretsmanager:DescribeSecret"], Resource = [format("arn:%s:secretsmanager:%s:%s:secret:*", local.partition, local.region, local.account)] },
      { Sid = "WatchRedeployLock", Effect = "Allow", Action = ["ssm:DeleteParameter", "ssm:GetParameter", "ssm:GetParametersByPath", "ssm:PutParameter"],
      Resource = sort(flatten([for s in local.watch_services : ["${local.watch_lock_prefix}${s}", "${local.watch_lock_prefix}${s}/*"]])) },
    ]
  })
}

resource "aws_iam_role" "watcher" {
  count              = var.watcher == null ? 0 : 1
  name               = var.watcher.role_name
  assume_role_policy = local.trust_policy_json
}

resource "aws_iam_role_policy" "watcher" {
  count  = var.watcher == null ? 0 : 1
  name   = "watch"
  role   = aws_iam_role.watcher[0].id
  policy = local.watch_policy_json
}

resource "aws_ecs_task_definition" "watcher" {
  count                    = var.watcher == null ? 0 : 1
  family                   = var.watcher.family
  task_role_arn            = aws_iam_role.watcher[0].arn
  execution_role_arn       = var.watcher.execution_role_arn
  network_mode             = "awsvpc"
  requires_compatibilities = ["FARGATE"]
  cpu                      = "256"
  memory                   = "512"
  container_definitions    = jsonencode([local.watch_container])

  runtime_platform {
    operating_system_family = "LINUX"
    cpu_architecture        = "X86_64"
  }
}

resource "aws_ecs_service" "watcher" {
  count                              = var.watcher == null ? 0 : 1
  name                               = var.watcher.service_name
  cluster                            = var.watcher.cluster
  task_definition                    = aws_ecs_task_definition.watcher[0].arn
  launch_type                        = "FARGATE"
  desired_count                      = 1
  deployment_minimum_healthy_percent = 0
  deployment_maximum_percent         = 100

  network_configuration {
    subnets          = var.watcher.subnets
    security_groups  = var.watcher.security_groups
    assign_public_ip = var.watcher.assign_public_ip
  }

  # The watcher's policy must be in place before its first pass.
  depends_on = [aws_iam_role_policy.watcher]
}
