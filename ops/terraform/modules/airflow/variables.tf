variable "name_prefix" {
  description = "Prefix of every name, e.g. autotrader-prod."
  type        = string
}

variable "airflow_version" {
  description = "MWAA Airflow version."
  type        = string
  default     = "2.10.3"
}

variable "environment_class" {
  description = "MWAA environment class."
  type        = string
  default     = "mw1.small"
}

variable "max_workers" {
  description = "Maximum Airflow workers."
  type        = number
  default     = 5
}

variable "vpc_id" {
  description = "VPC of the environment."
  type        = string
}

variable "vpc_cidr" {
  description = "CIDR of the VPC."
  type        = string
}

variable "subnet_ids" {
  description = "Private subnets (MWAA uses the first two)."
  type        = list(string)
}

variable "kms_key_arn" {
  description = "KMS key of the DAG bucket and the environment."
  type        = string
}

variable "log_bucket" {
  description = "Access-log bucket."
  type        = string
}

variable "cluster_arn" {
  description = "ECS cluster where DAG tasks start the runner image (ecs:RunTask)."
  type        = string
}

variable "runner_role_arns" {
  description = "Task and execution roles of the runner, which Airflow passes to RunTask."
  type        = list(string)
}

variable "tags" {
  description = "Tags of every resource."
  type        = map(string)
  default     = {}
}
