variable "name_prefix" {
  description = "Prefix of every name, e.g. autotrader-prod (bucket names must be globally unique)."
  type        = string
}

variable "noncurrent_days" {
  description = "Days a replaced or deleted object version is kept (feature-store backups, MLflow artifacts)."
  type        = number
  default     = 30
}

variable "noncurrent_days_raw" {
  description = "Days a replaced or deleted raw-archive object version is kept; the archive is the source of every rebuild."
  type        = number
  default     = 365
}

variable "log_retention_days" {
  description = "Days S3 server access logs are kept."
  type        = number
  default     = 400
}

variable "replicate" {
  description = "Replicate every data bucket: to replica_bucket_arns where given, else to a same-region replica made here."
  type        = bool
  default     = true
}

variable "replica_bucket_arns" {
  description = "Cross-region replication targets by bucket key (raw, store, mlflow); the others get a same-region replica."
  type        = map(string)
  default     = {}
}

variable "replica_kms_key_arns" {
  description = "KMS key(s) of the replica region; the first encrypts replicas. Required with replica_bucket_arns."
  type        = list(string)
  default     = []
}

variable "tags" {
  description = "Tags of every resource."
  type        = map(string)
  default     = {}
}
