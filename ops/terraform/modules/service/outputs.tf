output "service_name" {
  description = "ECS service name (aws ecs update-service --service ...)."
  value       = aws_ecs_service.this.name
}

output "task_role_arn" {
  description = "Task role of the component."
  value       = aws_iam_role.task.arn
}

output "task_definition_arn" {
  description = "Current task definition (a rollback of the container redeploys a previous revision)."
  value       = aws_ecs_task_definition.this.arn
}

output "target_group_arn_suffix" {
  description = "Target group ARN suffix (CloudWatch dimensions); null when not load balanced."
  value       = local.balanced ? aws_lb_target_group.this[0].arn_suffix : null
}

output "log_group" {
  description = "CloudWatch log group of the container."
  value       = aws_cloudwatch_log_group.this.name
}
