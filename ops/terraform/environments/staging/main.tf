# The staging environment of AutoTrader: every component of modules/autotrader with staging's sizes.

module "autotrader" {
  source                   = "../../modules/autotrader"
  providers                = { aws = aws, aws.replica = aws.replica }
  name_prefix              = "autotrader-staging"
  region                   = var.region
  image                    = var.image
  ecr_repository_arn       = var.ecr_repository_arn
  vpc_id                   = var.vpc_id
  vpc_cidr                 = var.vpc_cidr
  private_subnet_ids       = var.private_subnet_ids
  allowed_cidrs            = var.allowed_cidrs
  certificate_arn          = var.certificate_arn
  gateway_host             = var.gateway_host
  mlflow_host              = var.mlflow_host
  gateway_replicas         = 2
  runner_cpu               = 2048
  runner_memory            = 8192
  db_instance_class        = "db.t4g.small"
  db_multi_az              = true # staging mirrors production so failover can be rehearsed
  db_backup_retention_days = 7
  airflow_enabled          = false
  replica_bucket_arns      = var.replica_bucket_arns
  replica_kms_key_arns     = var.replica_kms_key_arns
  alarm_emails             = var.alarm_emails
}
