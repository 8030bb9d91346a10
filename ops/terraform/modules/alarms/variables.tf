variable "name_prefix" {
  description = "Prefix of every name, e.g. autotrader-prod."
  type        = string
}

variable "alb_arn_suffix" {
  description = "Load balancer ARN suffix."
  type        = string
}

variable "gateway_target_group_arn_suffix" {
  description = "Target group of the gateway."
  type        = string
}

variable "db_instance_id" {
  description = "RDS instance identifier."
  type        = string
}

variable "efs_file_system_id" {
  description = "EFS file system of the data folder."
  type        = string
}

variable "max_5xx_per_minute" {
  description = "Gateway 5xx answers per minute that raise the alarm (three minutes in a row)."
  type        = number
  default     = 5
}

variable "alarm_emails" {
  description = "E-mail addresses subscribed to the alarm topic."
  type        = list(string)
  default     = []
}

variable "tags" {
  description = "Tags of every resource."
  type        = map(string)
  default     = {}
}
