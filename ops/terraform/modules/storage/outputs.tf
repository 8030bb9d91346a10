output "raw_bucket" {
  description = "Bucket of the raw archive ([archive] bucket)."
  value       = aws_s3_bucket.data["raw"].id
}

output "store_bucket" {
  description = "Bucket of feature-store backups."
  value       = aws_s3_bucket.data["store"].id
}

output "mlflow_bucket" {
  description = "Bucket of MLflow artifacts (the tracking server's --artifacts-destination)."
  value       = aws_s3_bucket.data["mlflow"].id
}

output "bucket_arns" {
  description = "ARNs of the data buckets by key (raw, store, mlflow)."
  value       = { for k, b in aws_s3_bucket.data : k => b.arn }
}

output "log_bucket" {
  description = "Bucket of access logs (S3 and the load balancer)."
  value       = aws_s3_bucket.logs.id
}

output "kms_key_arn" {
  description = "KMS key encrypting the data buckets."
  value       = aws_kms_key.data.arn
}
