output "service_name" {
  description = "ECS service name (aws ecs update-service --service ...)."
  value       = var.create_service ? aws_ecs_service.this[0].name : null
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

output "execution_role_arn" {
  description = "Execution role of the component (pulls the image, reads its secrets)."
  value       = aws_iam_role.execution.arn
}

output "task_definition_family" {
  description = "Task definition family (the Airflow DAGs run the latest revision of the runner's)."
  value       = aws_ecs_task_definition.this.family
}

output "log_group_arn" {
  description = "ARN of the container's log group."
  value       = aws_cloudwatch_log_group.this.arn
}

output "container_name" {
  description = "Name of the container in the task definition."
  value       = var.name
}
