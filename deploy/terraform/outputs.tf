output "container_definitions" {
  description = "container_definitions for aws_ecs_task_definition: yours with the agent added and wired."
  value       = jsonencode(local.container_definitions)
}

output "volume_name" {
  description = "Add a volume { name = this } to the task definition."
  value       = var.volume_name
}

output "pid_mode" {
  description = "\"task\" when the agent signals the app (signal_process), else null: set the task definition's pid_mode to it."
  value       = local.pid_mode
}

output "task_role_policy_json" {
  description = "The least-privilege task role policy, what `agent policy` prints for these secrets."
  value       = local.task_role_policy_json
}

output "task_role_arn" {
  description = "The created task role (task_role_name), else null."
  value       = try(aws_iam_role.task[0].arn, null)
}

output "watcher_service_arn" {
  description = "The watcher service, when var.watcher is set."
  value       = try(aws_ecs_service.watcher[0].id, null)
}

output "feed_url" {
  description = "refresh.feed (or --feed) for the agents, when var.feed_watcher is set."
  value       = try(format("http://%s:%d", aws_lb.feed[0].dns_name, local.feed_port), null)
}

output "feed_watcher_service_arn" {
  description = "The feed watchers' service, when var.feed_watcher is set."
  value       = try(aws_ecs_service.feed_watcher[0].id, null)
}
