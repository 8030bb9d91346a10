output "address" {
  description = "Host name of the PostgreSQL instance."
  value       = aws_db_instance.this.address
}

output "port" {
  description = "Port of the PostgreSQL instance."
  value       = aws_db_instance.this.port
}

output "username" {
  description = "Master user name (its password lives in the master secret; only the bootstrap task uses it)."
  value       = aws_db_instance.this.username
}

output "master_secret_arn" {
  description = "Secrets Manager secret with the generated master password (JSON: username, password)."
  value       = aws_db_instance.this.master_user_secret[0].secret_arn
}

output "security_group_id" {
  description = "Security group of the database."
  value       = aws_security_group.db.id
}

output "kms_key_arn" {
  description = "KMS key of the database and its secret."
  value       = aws_kms_key.db.arn
}

output "app_username" {
  description = "Application role the services connect as (created by the bootstrap task)."
  value       = var.app_username
}

output "app_secret_arn" {
  description = "Secrets Manager secret of the application role (JSON: username, password), set and rotated by the bootstrap task."
  value       = aws_secretsmanager_secret.app.arn
}

output "bootstrap_script" {
  description = "Source of the bootstrap task (creates the role and databases, rotates the password, redeploys the services)."
  value       = file("${path.module}/bootstrap.py")
}
