# The change feed (docs/FEED.md): two or more agent watch tasks that serve
# it behind an internal Network Load Balancer. The feed serves no value
# (names and version ids), so, like /metrics, it is reachable only from
# inside the VPC: from the agents' security groups, through the load
# balancer; with token_secret_arn, only to the agents that carry the
# token. Two or more, and a deployment
# keeps half: while no feed answers, every agent polls AWS itself.

locals {
  feed      = var.feed_watcher
  feed_port = 8081
  # What agent watch reads from AGENT_CONFIG (strictly: a misspelt key fails).
  feed_config = local.feed == null ? null : jsonencode(merge(
    { feedAddr = ":${local.feed_port}", interval = local.feed.interval },
    local.feed.events_queue_url == null ? {} : { eventsQueue = local.feed.events_queue_url },
  ))
  feed_container = local.feed == null ? null : { for k, v in {
    name        = "watch"
    image       = var.agent_image
    essential   = true
    command     = ["watch"]
    environment = [{ name = "AGENT_CONFIG", value = local.feed_config }]
    # ECS's own injection: the token is never in the task definition.
    secrets = local.feed.token_secret_arn == null ? null : [{ name = "AGENT_FEED_TOKEN", valueFrom = local.feed.token_secret_arn }]
    portMappings = [
      { containerPort = local.feed_port, protocol = "tcp", name = "feed" },
      { containerPort = 9102, protocol = "tcp", name = "metrics" },
    ]
    readonlyRootFilesystem = true
    healthCheck            = { command = ["CMD", "/agent", "health"], interval = 10, timeout = 5, retries = 3, startPeriod = 60 }
    logConfiguration       = local.feed.log_configuration
  } : k => v if v != null }

  # What `agent policy --command watch --feed` prints: metadata reads only.
  feed_policy_json = jsonencode({
    Version = "2012-10-17"
    Statement = [
      { Sid = "FeedParameters", Effect = "Allow", Action = ["ssm:GetParameters"], Resource = [format("arn:%s:ssm:%s:%s:parameter/*", local.partition, local.region, local.account)] },
      { Sid = "FeedSecrets", Effect = "Allow", Action = ["secretsmanager:DescribeSecret"], Resource = [format("arn:%s:secretsmanager:%s:%s:secret:*", local.partition, local.region, local.account)] },
    ]
  })
  feed_count       = local.feed == null ? 0 : 1
  feed_agent_count = local.feed == null ? 0 : length(local.feed.agent_security_groups)
}

resource "aws_iam_role" "feed_watcher" {
  count              = local.feed_count
  name               = local.feed.role_name
  assume_role_policy = local.trust_policy_json
}

resource "aws_iam_role_policy" "feed_watcher" {
  count  = local.feed_count
  name   = "feed"
  role   = aws_iam_role.feed_watcher[0].id
  policy = local.feed_policy_json
}

# E.g. the events queue's policy (feed_events.tf).
resource "aws_iam_role_policy_attachment" "feed_watcher" {
  count      = local.feed == null ? 0 : length(local.feed.extra_managed_policy_arns)
  role       = aws_iam_role.feed_watcher[0].name
  policy_arn = local.feed.extra_managed_policy_arns[count.index]
}

resource "aws_security_group" "feed_lb" {
  count       = local.feed_count
  name_prefix = "secrets-feed-lb-"
  description = "ecs-secrets-agent feed load balancer: the feed port, from the agents' tasks only"
  vpc_id      = local.feed.vpc_id
}

resource "aws_security_group" "feed_watchers" {
  count       = local.feed_count
  name_prefix = "secrets-feed-watchers-"
  description = "ecs-secrets-agent feed watchers: the feed and its health check from the load balancer"
  vpc_id      = local.feed.vpc_id
}

resource "aws_vpc_security_group_ingress_rule" "feed_from_agents" {
  count                        = local.feed_agent_count
  security_group_id            = aws_security_group.feed_lb[0].id
  description                  = "the change feed, from the agents"
  ip_protocol                  = "tcp"
  from_port                    = local.feed_port
  to_port                      = local.feed_port
  referenced_security_group_id = local.feed.agent_security_groups[count.index]
}

# Terraform drops a security group's default egress: the load balancer
# reaches the watchers, and the watchers reach AWS's APIs.
resource "aws_vpc_security_group_egress_rule" "feed_lb_to_watchers" {
  count                        = local.feed_count
  security_group_id            = aws_security_group.feed_lb[0].id
  description                  = "the change feed, to the watchers"
  ip_protocol                  = "tcp"
  from_port                    = local.feed_port
  to_port                      = local.feed_port
  referenced_security_group_id = aws_security_group.feed_watchers[0].id
}

resource "aws_vpc_security_group_egress_rule" "feed_lb_health" {
  count                        = local.feed_count
  security_group_id            = aws_security_group.feed_lb[0].id
  description                  = "the watchers' /healthz"
  ip_protocol                  = "tcp"
  from_port                    = 9102
  to_port                      = 9102
  referenced_security_group_id = aws_security_group.feed_watchers[0].id
}

resource "aws_vpc_security_group_ingress_rule" "feed_from_lb" {
  count                        = local.feed_count
  security_group_id            = aws_security_group.feed_watchers[0].id
  description                  = "the change feed, through the load balancer"
  ip_protocol                  = "tcp"
  from_port                    = local.feed_port
  to_port                      = local.feed_port
  referenced_security_group_id = aws_security_group.feed_lb[0].id
}

resource "aws_vpc_security_group_ingress_rule" "feed_health_from_lb" {
  count                        = local.feed_count
  security_group_id            = aws_security_group.feed_watchers[0].id
  description                  = "the load balancer's health check (/healthz)"
  ip_protocol                  = "tcp"
  from_port                    = 9102
  to_port                      = 9102
  referenced_security_group_id = aws_security_group.feed_lb[0].id
}

resource "aws_vpc_security_group_ingress_rule" "feed_metrics_from_prometheus" {
  count                        = local.feed == null ? 0 : (local.feed.prometheus_security_group == null ? 0 : 1)
  security_group_id            = aws_security_group.feed_watchers[0].id
  description                  = "Prometheus scrapes /metrics"
  ip_protocol                  = "tcp"
  from_port                    = 9102
  to_port                      = 9102
  referenced_security_group_id = local.feed.prometheus_security_group
}

resource "aws_vpc_security_group_egress_rule" "feed_watchers_out" {
  count             = local.feed_count
  security_group_id = aws_security_group.feed_watchers[0].id
  description       = "SSM, Secrets Manager, SQS and ECS APIs (or their VPC endpoints)"
  ip_protocol       = "tcp"
  from_port         = 443
  to_port           = 443
  cidr_ipv4         = "0.0.0.0/0"
}

resource "aws_lb" "feed" {
  count                            = local.feed_count
  name_prefix                      = "feed-"
  internal                         = true
  load_balancer_type               = "network"
  subnets                          = local.feed.subnets
  security_groups                  = [aws_security_group.feed_lb[0].id]
  enable_cross_zone_load_balancing = true
}

resource "aws_lb_target_group" "feed" {
  count                = local.feed_count
  name_prefix          = "feed-"
  target_type          = "ip"
  protocol             = "TCP"
  port                 = local.feed_port
  vpc_id               = local.feed.vpc_id
  deregistration_delay = 75 # past the feed's default 60 s wait

  health_check {
    protocol = "HTTP"
    port     = "9102"
    path     = "/healthz"
  }
}

resource "aws_lb_listener" "feed" {
  count             = local.feed_count
  load_balancer_arn = aws_lb.feed[0].arn
  protocol          = "TCP"
  port              = local.feed_port

  default_action {
    type             = "forward"
    target_group_arn = aws_lb_target_group.feed[0].arn
  }
}

resource "aws_ecs_task_definition" "feed_watcher" {
  count                    = local.feed_count
  family                   = local.feed.family
  task_role_arn            = aws_iam_role.feed_watcher[0].arn
  execution_role_arn       = local.feed.execution_role_arn
  network_mode             = "awsvpc"
  requires_compatibilities = ["FARGATE"]
  cpu                      = "512"
  memory                   = "1024"
  container_definitions    = jsonencode([local.feed_container])

  runtime_platform {
    operating_system_family = "LINUX"
    cpu_architecture        = "X86_64"
  }
}

resource "aws_ecs_service" "feed_watcher" {
  count                              = local.feed_count
  name                               = local.feed.service_name
  cluster                            = local.feed.cluster
  task_definition                    = aws_ecs_task_definition.feed_watcher[0].arn
  launch_type                        = "FARGATE"
  desired_count                      = local.feed.desired_count
  deployment_minimum_healthy_percent = 50
  deployment_maximum_percent         = 200
  health_check_grace_period_seconds  = 60

  load_balancer {
    target_group_arn = aws_lb_target_group.feed[0].arn
    container_name   = "watch"
    container_port   = local.feed_port
  }

  network_configuration {
    subnets          = local.feed.subnets
    security_groups  = [aws_security_group.feed_watchers[0].id]
    assign_public_ip = false
  }

  # The target group must be on a listener, and the role's policy in place,
  # before the first watcher starts.
  depends_on = [aws_lb_listener.feed, aws_iam_role_policy.feed_watcher]
}
