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
  description = "Secret of the application role (PGPASSWORD of the tasks), set and rotated by the db-bootstrap task."
  value       = module.database.app_secret_arn
}

output "db_bootstrap_task_definition" {
  description = "One-off task: creates the application role and databases, rotates its password, redeploys the services."
  value       = module.db_bootstrap.task_definition_family
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
  value       = { gateway = module.gateway.service_name, mlflow = module.mlflow.service_name, runner = module.runner.service_name, collector = "collector" }
}

output "alarm_topic_arn" {
  description = "SNS topic of the infrastructure alarms."
  value       = module.alarms.topic_arn
}

output "airflow_dags_bucket" {
  description = "Bucket for the exported DAGs (null when Airflow is off)."
  value       = var.airflow_enabled ? module.airflow[0].dags_bucket : null
}

output "prometheus_endpoint" {
  description = "Amazon Managed Service for Prometheus: query endpoint (Grafana's SigV4 data source)."
  value       = module.monitoring.prometheus_endpoint
}

output "airflow_settings" {
  description = "Environment of `autotrader schedule airflow` for DAGs whose tasks run the kit's image on this cluster."
  value = {
    AUTOTRADER__AIRFLOW__RUN_WITH              = "ecs"
    AUTOTRADER__AIRFLOW__ECS_CLUSTER           = module.platform.cluster_name
    AUTOTRADER__AIRFLOW__ECS_TASK_DEFINITION   = module.runner.task_definition_family
    AUTOTRADER__AIRFLOW__ECS_CONTAINER         = module.runner.container_name
    AUTOTRADER__AIRFLOW__ECS_SUBNETS           = join(",", var.private_subnet_ids)
    AUTOTRADER__AIRFLOW__ECS_SECURITY_GROUPS   = module.platform.services_security_group_id
    AUTOTRADER__AIRFLOW__ECS_LOG_GROUP         = module.runner.log_group
    AUTOTRADER__AIRFLOW__ECS_LOG_STREAM_PREFIX = module.runner.container_name
    AUTOTRADER__AIRFLOW__REGION                = var.region
  }
}
