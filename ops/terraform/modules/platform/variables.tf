variable "name_prefix" {
  description = "Prefix of every name, e.g. autotrader-prod."
  type        = string
}

variable "vpc_id" {
  description = "VPC of the services."
  type        = string
}

variable "vpc_cidr" {
  description = "CIDR of the VPC (the services reach PostgreSQL, EFS and each other inside it)."
  type        = string
}

variable "private_subnet_ids" {
  description = "Private subnets of the tasks, EFS mount targets and an internal load balancer."
  type        = list(string)
}

variable "public_subnet_ids" {
  description = "Public subnets of an internet-facing load balancer (unused when internal = true)."
  type        = list(string)
  default     = []
}

variable "internal" {
  description = "Internal load balancer (reachable from the VPC and peered networks only)."
  type        = bool
  default     = true
}

variable "allowed_cidrs" {
  description = "Networks allowed to reach the load balancer on 443."
  type        = list(string)
}

variable "certificate_arn" {
  description = "ACM certificate of the load balancer's HTTPS listener."
  type        = string
}

variable "log_bucket" {
  description = "Bucket of the load balancer's access logs (storage module's log_bucket)."
  type        = string
}

variable "log_retention_days" {
  description = "Days CloudWatch logs are kept."
  type        = number
  default     = 400
}

variable "tags" {
  description = "Tags of every resource."
  type        = map(string)
  default     = {}
}
