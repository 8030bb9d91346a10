# PostgreSQL for the MLflow tracking server (database `mlflow`) and the deployment state of the signal gateway
# (database `deploy`; [deploy] state_url). The master password is generated and kept (and rotated) by RDS in Secrets
# Manager (manage_master_user_password); only the one-off bootstrap task uses it (bootstrap.py). The applications
# connect as the application role (app_username) with the password in the application secret, which the bootstrap
# task sets and rotates, redeploying the services that read it at start. Never a setting or a Terraform output.

data "aws_caller_identity" "current" {}

resource "aws_kms_key" "db" {
  description             = "${var.name_prefix}: PostgreSQL storage, Performance Insights and the master secret"
  enable_key_rotation     = true
  deletion_window_in_days = 30
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Sid       = "AccountAdministers"
      Effect    = "Allow"
      Principal = { AWS = "arn:aws:iam::${data.aws_caller_identity.current.account_id}:root" }
      Action    = "kms:*"
      Resource  = "*"
    }]
  })
  tags = var.tags
}

resource "aws_db_subnet_group" "this" {
  name       = "${var.name_prefix}-postgres"
  subnet_ids = var.subnet_ids
  tags       = var.tags
}

resource "aws_security_group" "db" {
  name        = "${var.name_prefix}-postgres"
  description = "PostgreSQL: reachable only from the AutoTrader services"
  vpc_id      = var.vpc_id
  tags        = var.tags
}

resource "aws_vpc_security_group_ingress_rule" "db" {
  for_each                     = toset(var.client_security_group_ids)
  security_group_id            = aws_security_group.db.id
  referenced_security_group_id = each.value
  ip_protocol                  = "tcp"
  from_port                    = 5432
  to_port                      = 5432
  description                  = "PostgreSQL from an AutoTrader service"
}

resource "aws_db_parameter_group" "this" {
  name   = "${var.name_prefix}-postgres16"
  family = "postgres16"
  parameter {
    name  = "rds.force_ssl"
    value = "1"
  }
  parameter {
    name  = "log_statement"
    value = "ddl"
  }
  parameter {
    name  = "log_min_duration_statement"
    value = "1000"
  }
  tags = var.tags
}

resource "aws_iam_role" "monitoring" {
  name = "${var.name_prefix}-rds-monitoring"
  assume_role_policy = jsonencode({
    Version   = "2012-10-17"
    Statement = [{ Effect = "Allow", Principal = { Service = "monitoring.rds.amazonaws.com" }, Action = "sts:AssumeRole" }]
  })
  managed_policy_arns = ["arn:aws:iam::aws:policy/service-role/AmazonRDSEnhancedMonitoringRole"]
  tags                = var.tags
}

resource "aws_db_instance" "this" {
  identifier                            = "${var.name_prefix}-postgres"
  engine                                = "postgres"
  engine_version                        = var.engine_version
  instance_class                        = var.instance_class
  allocated_storage                     = var.allocated_storage
  max_allocated_storage                 = var.allocated_storage * 4
  storage_type                          = "gp3"
  storage_encrypted                     = true
  kms_key_id                            = aws_kms_key.db.arn
  db_name                               = "mlflow"
  username                              = "autotrader"
  manage_master_user_password           = true
  master_user_secret_kms_key_id         = aws_kms_key.db.arn
  iam_database_authentication_enabled   = true
  db_subnet_group_name                  = aws_db_subnet_group.this.name
  vpc_security_group_ids                = [aws_security_group.db.id]
  parameter_group_name                  = aws_db_parameter_group.this.name
  publicly_accessible                   = false
  multi_az                              = var.multi_az
  backup_retention_period               = var.backup_retention_days
  backup_window                         = "00:30-01:30"
  maintenance_window                    = "sun:05:00-sun:06:00"
  copy_tags_to_snapshot                 = true
  deletion_protection                   = true
  skip_final_snapshot                   = false
  final_snapshot_identifier             = "${var.name_prefix}-postgres-final"
  auto_minor_version_upgrade            = true
  monitoring_interval                   = 60
  monitoring_role_arn                   = aws_iam_role.monitoring.arn
  performance_insights_enabled          = true
  performance_insights_kms_key_id       = aws_kms_key.db.arn
  performance_insights_retention_period = 7
  enabled_cloudwatch_logs_exports       = ["postgresql", "upgrade"]
  tags                                  = var.tags
}

# The application role's credentials (JSON: username, password), written by bootstrap.py: no value in Terraform.
resource "aws_secretsmanager_secret" "app" {
  #checkov:skip=CKV2_AWS_57:rotated by the bootstrap task (bootstrap.py: new password, then a forced redeployment of every service that reads it at start); a rotation Lambda would change it under running services
  name                    = "${var.name_prefix}/postgres-app"
  description             = "AutoTrader: PostgreSQL application role (username, password), set by the db-bootstrap task"
  kms_key_id              = aws_kms_key.db.arn
  recovery_window_in_days = 30
  tags                    = var.tags
}
