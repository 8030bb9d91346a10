variable "region" {
  description = "AWS region."
  type        = string
  default     = "eu-west-1"
}

variable "replica_region" {
  description = "Region of the data buckets' replicas (a lost region is restored from it)."
  type        = string
  default     = "eu-central-1"
}

variable "image" {
  description = "Container image, by immutable tag or digest (e.g. <account>.dkr.ecr.<region>.amazonaws.com/autotrader:1.4.0)."
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
  description = "Private subnets in two or more availability zones."
  type        = list(string)
}

variable "allowed_cidrs" {
  description = "Networks allowed to reach the gateway and MLflow."
  type        = list(string)
}

variable "certificate_arn" {
  description = "ACM certificate for gateway_host and mlflow_host."
  type        = string
}

variable "gateway_host" {
  description = "Host name of the signal gateway."
  type        = string
}

variable "mlflow_host" {
  description = "Host name of the MLflow server."
  type        = string
}

variable "replica_bucket_arns" {
  description = "Cross-region replicas of the data buckets by key (raw, store, mlflow)."
  type        = map(string)
  default     = {}
}

variable "replica_kms_key_arns" {
  description = "KMS key(s) of the replica region."
  type        = list(string)
  default     = []
}

variable "alarm_emails" {
  description = "E-mail addresses for the infrastructure alarms."
  type        = list(string)
  default     = []
}
