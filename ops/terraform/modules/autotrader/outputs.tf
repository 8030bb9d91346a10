output "gateway_url" {
  description = "Signal gateway."
  value       = "https://${var.gateway_host}"
}

output "mlflow_tracking_uri" {
  description = "[mlflow] tracking_uri for clients in the VPC."
  value       = "https://${var.mlflow_host}"
}

output "load_balancer_dns_name" {
  description = "Point gateway_host and mlflow_host at this name."
  value       = module.platform.alb_dns_name
}

output "raw_archive_bucket" {
  description = "[archive] bucket."
  value       = module.storage.raw_bucket
}

output "feature_store_bucket" {
  description = "Bucket of feature-store backups."
  value       = module.storage.store_bucket
}

output "mlflow_artifacts_bucket" {
  description = "Bucket of MLflow artifacts."
  value       = module.storage.mlflow_bucket
}

output "database_address" {
  description = "PostgreSQL host (databases mlflow and deploy)."
  value       = module.database.address
}

output "database_secret_arn" {
  description = "Secret with the PostgreSQL password (PGPASSWORD of the tasks)."
  value       = module.database.master_secret_arn
}

output "secret_arns" {
  description = "Application secrets to fill once (aws secretsmanager put-secret-value)."
  value       = module.secrets.arns
}

output "cluster_name" {
  description = "ECS cluster."
  value       = module.platform.cluster_name
}

output "services" {
  description = "ECS service names."
  value       = { gateway = module.gateway.service_name, mlflow = module.mlflow.service_name, runner = module.runner.service_name }
}

output "alarm_topic_arn" {
  description = "SNS topic of the infrastructure alarms."
  value       = module.alarms.topic_arn
}

output "airflow_dags_bucket" {
  description = "Bucket for the exported DAGs (null when Airflow is off)."
  value       = var.airflow_enabled ? module.airflow[0].dags_bucket : null
}
