output "gateway_url" {
  description = "Signal gateway."
  value       = module.autotrader.gateway_url
}

output "mlflow_tracking_uri" {
  description = "[mlflow] tracking_uri."
  value       = module.autotrader.mlflow_tracking_uri
}

output "load_balancer_dns_name" {
  description = "DNS target of gateway_host and mlflow_host."
  value       = module.autotrader.load_balancer_dns_name
}

output "raw_archive_bucket" {
  description = "[archive] bucket."
  value       = module.autotrader.raw_archive_bucket
}

output "feature_store_bucket" {
  description = "Feature-store backups."
  value       = module.autotrader.feature_store_bucket
}

output "mlflow_artifacts_bucket" {
  description = "MLflow artifacts."
  value       = module.autotrader.mlflow_artifacts_bucket
}

output "database_address" {
  description = "PostgreSQL host."
  value       = module.autotrader.database_address
}

output "secret_arns" {
  description = "Secrets to fill once."
  value       = module.autotrader.secret_arns
}

output "cluster_name" {
  description = "ECS cluster."
  value       = module.autotrader.cluster_name
}

output "services" {
  description = "ECS service names."
  value       = module.autotrader.services
}

output "alarm_topic_arn" {
  description = "Alarm topic."
  value       = module.autotrader.alarm_topic_arn
}

output "airflow_dags_bucket" {
  description = "DAG bucket (production: MWAA)."
  value       = module.autotrader.airflow_dags_bucket
}

output "airflow_settings" {
  description = "Environment of `autotrader schedule airflow` (DAG tasks run the kit's image on the cluster)."
  value       = module.autotrader.airflow_settings
}

output "prometheus_endpoint" {
  description = "Amazon Managed Service for Prometheus query endpoint."
  value       = module.autotrader.prometheus_endpoint
}

output "db_bootstrap_task_definition" {
  description = "Run once (and to rotate the application password): aws ecs run-task --task-definition <this>."
  value       = module.autotrader.db_bootstrap_task_definition
}
