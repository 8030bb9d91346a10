output "cluster_arn" {
  description = "ECS cluster."
  value       = aws_ecs_cluster.this.arn
}

output "cluster_name" {
  description = "ECS cluster name."
  value       = aws_ecs_cluster.this.name
}

output "alb_arn_suffix" {
  description = "Load balancer ARN suffix (CloudWatch dimensions)."
  value       = aws_lb.this.arn_suffix
}

output "alb_dns_name" {
  description = "DNS name of the load balancer."
  value       = aws_lb.this.dns_name
}

output "https_listener_arn" {
  description = "HTTPS listener the services attach their rules to."
  value       = aws_lb_listener.https.arn
}

output "services_security_group_id" {
  description = "Security group of every AutoTrader task."
  value       = aws_security_group.services.id
}

output "efs_file_system_id" {
  description = "EFS file system of the data folder."
  value       = aws_efs_file_system.data.id
}

output "efs_access_point_id" {
  description = "EFS access point (uid/gid 10001, /autotrader-data)."
  value       = aws_efs_access_point.data.id
}

output "efs_arn" {
  description = "EFS file system ARN (task roles are granted client access to it)."
  value       = aws_efs_file_system.data.arn
}

output "logs_kms_key_arn" {
  description = "KMS key of the CloudWatch log groups."
  value       = aws_kms_key.logs.arn
}
