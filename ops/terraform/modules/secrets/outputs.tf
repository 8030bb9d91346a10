output "arns" {
  description = "Secret ARN by environment variable name (service module's secrets input)."
  value       = { for k, s in aws_secretsmanager_secret.this : k => s.arn }
}

output "kms_key_arn" {
  description = "KMS key of the secrets."
  value       = aws_kms_key.secrets.arn
}
