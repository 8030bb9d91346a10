variable "name_prefix" {
  description = "Prefix of every name, e.g. autotrader-prod."
  type        = string
}

variable "airflow_version" {
  description = "MWAA Airflow version: Airflow 3 (the DAGs import airflow.sdk; MWAA offers 3.0.6 to 3.3.1)."
  type        = string
  default     = "3.3.1"
  validation {
    condition     = tonumber(split(".", var.airflow_version)[0]) >= 3
    error_message = "The exported DAGs need Airflow 3 (airflow.sdk)."
  }
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
  description = "ECS cluster where DAG tasks start the kit's image (ecs:RunTask)."
  type        = string
}

variable "task_definition_family" {
  description = "Task definition family of the pipeline tasks (the runner's), [airflow] ecs_task_definition."
  type        = string
}

variable "task_role_arns" {
  description = "Task role and execution role of that task definition: RunTask passes both (iam:PassRole)."
  type        = list(string)
}

variable "task_log_group_arn" {
  description = "Log group of the pipeline tasks' container, read back by the ECS operator."
  type        = string
}

variable "tags" {
  description = "Tags of every resource."
  type        = map(string)
  default     = {}
}
