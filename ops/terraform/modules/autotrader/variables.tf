variable "name_prefix" {
  description = "Prefix of every name, e.g. autotrader-prod."
  type        = string
}

variable "region" {
  description = "AWS region."
  type        = string
}

variable "image" {
  description = "Container image of the kit (Dockerfile at the repository root), by immutable tag or digest."
  type        = string
}

variable "ecr_repository_arn" {
  description = "ECR repository of the image."
  type        = string
}

variable "vpc_id" {
  description = "VPC."
  type        = string
}

variable "vpc_cidr" {
  description = "CIDR of the VPC."
  type        = string
}

variable "private_subnet_ids" {
  description = "Private subnets (two or more availability zones)."
  type        = list(string)
}

variable "public_subnet_ids" {
  description = "Public subnets (only for an internet-facing load balancer)."
  type        = list(string)
  default     = []
}

variable "internal" {
  description = "Internal load balancer."
  type        = bool
  default     = true
}

variable "allowed_cidrs" {
  description = "Networks allowed to reach the gateway and MLflow over HTTPS."
  type        = list(string)
}

variable "certificate_arn" {
  description = "ACM certificate covering gateway_host and mlflow_host."
  type        = string
}

variable "gateway_host" {
  description = "Host name of the signal gateway, e.g. signals.example.com."
  type        = string
}

variable "mlflow_host" {
  description = "Host name of the MLflow server, e.g. mlflow.example.com ([mlflow] tracking_uri = https://<this>)."
  type        = string
}

variable "gateway_replicas" {
  description = "Gateway tasks (they share the deployment state in PostgreSQL)."
  type        = number
  default     = 2
}

variable "gateway_cpu" {
  description = "Gateway CPU units."
  type        = number
  default     = 1024
}

variable "gateway_memory" {
  description = "Gateway memory (MiB)."
  type        = number
  default     = 2048
}

variable "mlflow_replicas" {
  description = "MLflow server tasks."
  type        = number
  default     = 1
}

variable "runner_cpu" {
  description = "Runner CPU units (training runs here)."
  type        = number
  default     = 4096
}

variable "runner_memory" {
  description = "Runner memory (MiB)."
  type        = number
  default     = 16384
}

variable "airflow_enabled" {
  description = "Schedule with MWAA (DAGs from `autotrader schedule airflow`) instead of the runner's embedded scheduler."
  type        = bool
  default     = false
}

variable "db_instance_class" {
  description = "PostgreSQL instance class."
  type        = string
  default     = "db.t4g.medium"
}

variable "db_multi_az" {
  description = "PostgreSQL standby in a second availability zone."
  type        = bool
  default     = true
}

variable "db_backup_retention_days" {
  description = "Days of PostgreSQL point-in-time recovery."
  type        = number
  default     = 14
}

variable "raw_noncurrent_days" {
  description = "Days old versions of raw-archive objects are kept."
  type        = number
  default     = 365
}

variable "replicate" {
  description = "Replicate every data bucket to the replica region (provider aws.replica)."
  type        = bool
  default     = true
}

variable "replica_bucket_arns" {
  description = "Replicas managed elsewhere by bucket key (raw, store, mlflow); the others get one made in the replica region."
  type        = map(string)
  default     = {}
}

variable "replica_kms_key_arns" {
  description = "KMS key(s) in the replica region."
  type        = list(string)
  default     = []
}

variable "alarm_emails" {
  description = "E-mail addresses subscribed to the infrastructure alarms."
  type        = list(string)
  default     = []
}

variable "tags" {
  description = "Tags of every resource."
  type        = map(string)
  default     = {}
}
