variable "name_prefix" {
  description = "Prefix of every name, e.g. autotrader-prod."
  type        = string
}

variable "vpc_id" {
  description = "VPC of the database."
  type        = string
}

variable "subnet_ids" {
  description = "Private subnets (at least two availability zones)."
  type        = list(string)
}

variable "client_security_group_ids" {
  description = "Security groups allowed to connect on 5432 (MLflow server, gateway, runner)."
  type        = list(string)
  default     = []
}

variable "engine_version" {
  description = "PostgreSQL version (the parameter group family is postgres16)."
  type        = string
  default     = "16.4"
}

variable "instance_class" {
  description = "Instance class."
  type        = string
  default     = "db.t4g.medium"
}

variable "allocated_storage" {
  description = "Storage in GiB (autoscaling up to 4x)."
  type        = number
  default     = 50
}

variable "multi_az" {
  description = "Standby in a second availability zone."
  type        = bool
  default     = true
}

variable "backup_retention_days" {
  description = "Days of automated backups (point-in-time recovery window)."
  type        = number
  default     = 14
}

variable "tags" {
  description = "Tags of every resource."
  type        = map(string)
  default     = {}
}

variable "app_username" {
  description = "PostgreSQL role of the applications (not the master user)."
  type        = string
  default     = "autotrader_app"
}
