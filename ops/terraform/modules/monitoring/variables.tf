variable "name_prefix" {
  description = "Prefix of every name, e.g. autotrader-prod."
  type        = string
}

variable "rules_yaml" {
  description = "The Prometheus rule file (ops/prometheus/autotrader-rules.yml) evaluated by AMP."
  type        = string
}

variable "alarm_topic_arn" {
  description = "SNS topic the alert manager sends to (the alarms module's topic)."
  type        = string
}

variable "kms_key_arn" {
  description = "KMS key of the AMP workspace."
  type        = string
}

variable "logs_kms_key_arn" {
  description = "KMS key of the log groups."
  type        = string
}

variable "log_retention_days" {
  description = "Days the collector's and the workspace's logs are kept."
  type        = number
  default     = 400
}

variable "vpc_id" {
  description = "VPC of the Cloud Map namespace."
  type        = string
}

variable "cluster_arn" {
  description = "ECS cluster of the collector."
  type        = string
}

variable "subnet_ids" {
  description = "Private subnets of the collector."
  type        = list(string)
}

variable "security_group_id" {
  description = "Security group of the services (the collector reaches the gateway tasks on gateway_port)."
  type        = string
}

variable "gateway_port" {
  description = "Port of the gateway's /metrics."
  type        = number
  default     = 8080
}

variable "efs_file_system_id" {
  description = "EFS file system of the data folder (metric files in /data/metrics)."
  type        = string
}

variable "efs_access_point_id" {
  description = "EFS access point."
  type        = string
}

variable "efs_arn" {
  description = "EFS file system ARN."
  type        = string
}

variable "prometheus_image" {
  description = "Prometheus image of the agent, pinned by digest (docker buildx imagetools inspect prom/prometheus:<tag> prints it)."
  type        = string
  default     = "prom/prometheus:v3.5.0@sha256:63805ebb8d2b3920190daf1cb14a60871b16fd38bed42b857a3182bc621f4996"
}

variable "node_exporter_image" {
  description = "node-exporter image of the textfile collector, pinned by digest."
  type        = string
  default     = "prom/node-exporter:v1.9.1@sha256:d00a542e409ee618a4edc67da14dd48c5da66726bbd5537ab2af9c1dfc442c8a"
}

variable "tags" {
  description = "Tags of every resource."
  type        = map(string)
  default     = {}
}
