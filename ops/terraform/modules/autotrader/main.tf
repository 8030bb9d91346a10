# The whole AutoTrader deployment, composed from the other modules; environments/staging and
# environments/production call it with their sizes. Settings reach the containers as AUTOTRADER__SECTION__KEY
# environment variables (they override settings.ini); secrets come from Secrets Manager into the environment.

locals {
  db_url_host = "${module.database.address}:${module.database.port}"
  common_env = {
    AUTOTRADER__ARCHIVE__BACKEND     = "s3"
    AUTOTRADER__ARCHIVE__BUCKET      = module.storage.raw_bucket
    AUTOTRADER__ARCHIVE__PREFIX      = "raw"
    AUTOTRADER__ARCHIVE__REGION      = var.region
    AUTOTRADER__MLFLOW__TRACKING_URI = "https://${var.mlflow_host}"
    AUTOTRADER__DEPLOY__STATE_URL    = "postgresql+psycopg://${module.database.app_username}@${local.db_url_host}/deploy"
    PGSSLMODE                        = "require"
  }
  # the application role, not the master: its password is set and rotated by the db-bootstrap task, which then
  # redeploys the services (they read it at start); RDS rotating the master secret does not touch them
  db_password = { PGPASSWORD = "${module.database.app_secret_arn}:password::" }
  app_secrets = { for k, v in module.secrets.arns : k => v if startswith(k, "AUTOTRADER_") }
  # MLflow requires a user (its basic-auth app): the clients sign in with these, the server creates its admin from them
  mlflow_client = { for k in ["MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"] : k => module.secrets.arns[k] }
  mlflow_server = {
    MLFLOW_AUTH_ADMIN_USERNAME     = module.secrets.arns["MLFLOW_TRACKING_USERNAME"]
    MLFLOW_AUTH_ADMIN_PASSWORD     = module.secrets.arns["MLFLOW_TRACKING_PASSWORD"]
    MLFLOW_FLASK_SERVER_SECRET_KEY = module.secrets.arns["MLFLOW_FLASK_SERVER_SECRET_KEY"]
  }
  # TLS inside the VPC too: the load balancer encrypts to its targets (HTTPS target groups), which serve TLS with a
  # certificate made at container start (the load balancer does not verify its targets' certificates)
  https_check = "import ssl, urllib.request; urllib.request.urlopen('https://127.0.0.1:%d%s', timeout=3, context=ssl._create_unverified_context())"
  kms_data    = [module.storage.kms_key_arn]
}

module "storage" {
  source = "../storage"
  providers = {
    aws         = aws
    aws.replica = aws.replica
  }
  name_prefix          = var.name_prefix
  noncurrent_days_raw  = var.raw_noncurrent_days
  replicate            = var.replicate
  replica_bucket_arns  = var.replica_bucket_arns
  replica_kms_key_arns = var.replica_kms_key_arns
  tags                 = var.tags
}

module "platform" {
  source             = "../platform"
  name_prefix        = var.name_prefix
  vpc_id             = var.vpc_id
  vpc_cidr           = var.vpc_cidr
  private_subnet_ids = var.private_subnet_ids
  public_subnet_ids  = var.public_subnet_ids
  internal           = var.internal
  allowed_cidrs      = var.allowed_cidrs
  certificate_arn    = var.certificate_arn
  log_bucket         = module.storage.log_bucket
  tags               = var.tags
}

module "database" {
  source                    = "../database"
  name_prefix               = var.name_prefix
  vpc_id                    = var.vpc_id
  subnet_ids                = var.private_subnet_ids
  client_security_group_ids = [module.platform.services_security_group_id]
  instance_class            = var.db_instance_class
  multi_az                  = var.db_multi_az
  backup_retention_days     = var.db_backup_retention_days
  tags                      = var.tags
}

module "secrets" {
  source      = "../secrets"
  name_prefix = var.name_prefix
  tags        = var.tags
}

locals {
  service_common = {
    cluster_arn         = module.platform.cluster_arn
    vpc_id              = var.vpc_id
    subnet_ids          = var.private_subnet_ids
    security_group_id   = module.platform.services_security_group_id
    efs_file_system_id  = module.platform.efs_file_system_id
    efs_access_point_id = module.platform.efs_access_point_id
    efs_arn             = module.platform.efs_arn
    logs_kms_key_arn    = module.platform.logs_kms_key_arn
    listener_arn        = module.platform.https_listener_arn
  }
  read_mlflow = [
    { Effect = "Allow", Action = ["s3:GetObject"], Resource = "${module.storage.bucket_arns["mlflow"]}/*" },
    { Effect = "Allow", Action = ["s3:ListBucket"], Resource = module.storage.bucket_arns["mlflow"] },
    { Effect = "Allow", Action = ["kms:Decrypt"], Resource = local.kms_data }
  ]
}

# The signal gateway: `autotrader serve`, over HTTPS. Liveness: the container health check on /healthz (ECS replaces a
# gateway that stops answering). Readiness: the load balancer's check on /readyz (traffic only to replicas with the
# routed versions loaded and warm); a fresh gateway, alive but not ready until a version is deployed, is not replaced.
module "gateway" {
  source                 = "../service"
  name_prefix            = var.name_prefix
  name                   = "gateway"
  image                  = var.image
  ecr_repository_arn     = var.ecr_repository_arn
  command                = ["autotrader", "serve", "--port", "8080"]
  cpu                    = var.gateway_cpu
  memory                 = var.gateway_memory
  desired_count          = var.gateway_replicas
  port                   = 8080
  path_patterns          = ["/*"]
  host_headers           = [var.gateway_host]
  listener_priority      = 100
  readiness_path         = "/readyz"
  health_check_command   = ["CMD", "python", "-c", format(local.https_check, 8080, "/healthz")]
  service_discovery_arn  = module.monitoring.gateway_discovery_arn
  environment            = merge(local.common_env, { AUTOTRADER__DEPLOY__HOST = "0.0.0.0", AUTOTRADER__DEPLOY__PORT = "8080", AUTOTRADER__DEPLOY__TLS_SELF_SIGNED = "true" })
  secrets                = merge(local.db_password, local.mlflow_client, { AUTOTRADER_ADMIN_TOKEN = local.app_secrets["AUTOTRADER_ADMIN_TOKEN"] })
  secrets_kms_key_arns   = [module.database.kms_key_arn, module.secrets.kms_key_arn]
  task_policy_statements = local.read_mlflow
  stop_timeout           = 60
  cluster_arn            = local.service_common.cluster_arn
  vpc_id                 = local.service_common.vpc_id
  subnet_ids             = local.service_common.subnet_ids
  security_group_id      = local.service_common.security_group_id
  efs_file_system_id     = local.service_common.efs_file_system_id
  efs_access_point_id    = local.service_common.efs_access_point_id
  efs_arn                = local.service_common.efs_arn
  logs_kms_key_arn       = local.service_common.logs_kms_key_arn
  listener_arn           = local.service_common.listener_arn
  tags                   = var.tags
}

# The MLflow tracking server (`autotrader tracking-server`): runs and the model registry in PostgreSQL, artifacts in S3
# (proxied), MLflow's basic-auth app (every API call needs a user; its users in the database mlflow_auth), over HTTPS.
module "mlflow" {
  source             = "../service"
  name_prefix        = var.name_prefix
  name               = "mlflow"
  image              = var.image
  ecr_repository_arn = var.ecr_repository_arn
  command = ["autotrader", "tracking-server", "--host", "0.0.0.0", "--port", "5000",
    "--backend-store-uri", "postgresql+psycopg://${module.database.app_username}@${local.db_url_host}/mlflow?sslmode=require",
    "--auth-db-uri", "postgresql+psycopg://${module.database.app_username}@${local.db_url_host}/mlflow_auth?sslmode=require",
    "--artifacts-destination", "s3://${module.storage.mlflow_bucket}/artifacts",
  "--allowed-hosts", "${var.mlflow_host},localhost:5000,127.0.0.1:5000", "--tls-self-signed"]
  cpu                  = 1024
  memory               = 2048
  desired_count        = var.mlflow_replicas
  port                 = 5000
  path_patterns        = ["/*"]
  host_headers         = [var.mlflow_host]
  listener_priority    = 200
  readiness_path       = "/health"
  elb_replaces_tasks   = true
  health_check_command = ["CMD", "python", "-c", format(local.https_check, 5000, "/health")]
  environment          = { AWS_DEFAULT_REGION = var.region, PGSSLMODE = "require" }
  secrets              = merge(local.db_password, local.mlflow_server)
  secrets_kms_key_arns = [module.database.kms_key_arn, module.secrets.kms_key_arn]
  task_policy_statements = [
    { Effect = "Allow", Action = ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"], Resource = "${module.storage.bucket_arns["mlflow"]}/*" },
    { Effect = "Allow", Action = ["s3:ListBucket"], Resource = module.storage.bucket_arns["mlflow"] },
    { Effect = "Allow", Action = ["kms:Decrypt", "kms:GenerateDataKey"], Resource = local.kms_data }
  ]
  cluster_arn         = local.service_common.cluster_arn
  vpc_id              = local.service_common.vpc_id
  subnet_ids          = local.service_common.subnet_ids
  security_group_id   = local.service_common.security_group_id
  efs_file_system_id  = local.service_common.efs_file_system_id
  efs_access_point_id = local.service_common.efs_access_point_id
  efs_arn             = local.service_common.efs_arn
  logs_kms_key_arn    = local.service_common.logs_kms_key_arn
  listener_arn        = local.service_common.listener_arn
  tags                = var.tags
}

# The pipeline runner: the embedded scheduler (`autotrader schedule run`: ingest daily, train weekly, health hourly)
# when Airflow is off; with Airflow on it idles at 0 tasks and MWAA starts its task definition per DAG task. One
# scheduler only (it holds a lock on EFS): a redeployment stops the old task before it starts the new one
# (minimum 0 %, maximum 100 %), and the old task gets the longest stop time-out Fargate allows.
module "runner" {
  source               = "../service"
  name_prefix          = var.name_prefix
  name                 = "runner"
  image                = var.image
  ecr_repository_arn   = var.ecr_repository_arn
  command              = ["autotrader", "schedule", "run"]
  single_instance      = true
  stop_timeout         = 120
  cpu                  = var.runner_cpu
  memory               = var.runner_memory
  desired_count        = var.airflow_enabled ? 0 : 1
  environment          = local.common_env
  secrets              = merge(local.db_password, local.app_secrets, local.mlflow_client)
  secrets_kms_key_arns = [module.database.kms_key_arn, module.secrets.kms_key_arn]
  task_policy_statements = concat(local.read_mlflow, [
    { Effect = "Allow", Action = ["s3:GetObject", "s3:PutObject"], Resource = "${module.storage.bucket_arns["raw"]}/*" },
    { Effect = "Allow", Action = ["s3:ListBucket"], Resource = [module.storage.bucket_arns["raw"], module.storage.bucket_arns["store"]] },
    { Effect = "Allow", Action = ["s3:GetObject", "s3:PutObject"], Resource = "${module.storage.bucket_arns["store"]}/*" },
    { Effect = "Allow", Action = ["s3:PutObject"], Resource = "${module.storage.bucket_arns["mlflow"]}/*" },
    { Effect = "Allow", Action = ["kms:GenerateDataKey"], Resource = local.kms_data }
  ])
  cluster_arn         = local.service_common.cluster_arn
  vpc_id              = local.service_common.vpc_id
  subnet_ids          = local.service_common.subnet_ids
  security_group_id   = local.service_common.security_group_id
  efs_file_system_id  = local.service_common.efs_file_system_id
  efs_access_point_id = local.service_common.efs_access_point_id
  efs_arn             = local.service_common.efs_arn
  logs_kms_key_arn    = local.service_common.logs_kms_key_arn
  tags                = var.tags
}

module "airflow" {
  count                  = var.airflow_enabled ? 1 : 0
  source                 = "../airflow"
  name_prefix            = var.name_prefix
  vpc_id                 = var.vpc_id
  vpc_cidr               = var.vpc_cidr
  subnet_ids             = var.private_subnet_ids
  kms_key_arn            = module.storage.kms_key_arn
  log_bucket             = module.storage.log_bucket
  cluster_arn            = module.platform.cluster_arn
  task_definition_family = module.runner.task_definition_family
  task_role_arns         = [module.runner.task_role_arn, module.runner.execution_role_arn]
  task_log_group_arn     = module.runner.log_group_arn
  tags                   = var.tags
}

# The project's Prometheus rules evaluated in production (AMP), fed by a collector on the cluster.
module "monitoring" {
  source              = "../monitoring"
  name_prefix         = var.name_prefix
  rules_yaml          = file("${path.module}/../../../prometheus/autotrader-rules.yml")
  alarm_topic_arn     = module.alarms.topic_arn
  kms_key_arn         = module.storage.kms_key_arn
  logs_kms_key_arn    = module.platform.logs_kms_key_arn
  vpc_id              = var.vpc_id
  cluster_arn         = module.platform.cluster_arn
  subnet_ids          = var.private_subnet_ids
  security_group_id   = module.platform.services_security_group_id
  efs_file_system_id  = module.platform.efs_file_system_id
  efs_access_point_id = module.platform.efs_access_point_id
  efs_arn             = module.platform.efs_arn
  tags                = var.tags
}

# One-off task (aws ecs run-task, see docs/operations.md): creates the application role and the databases, sets and
# rotates the application password, then redeploys the services that read it. Never runs as a service.
module "db_bootstrap" {
  source             = "../service"
  name_prefix        = var.name_prefix
  name               = "db-bootstrap"
  image              = var.image
  ecr_repository_arn = var.ecr_repository_arn
  command            = ["python", "-c", module.database.bootstrap_script]
  create_service     = false
  cpu                = 256
  memory             = 512
  environment = {
    PGHOST   = module.database.address, PGPORT = tostring(module.database.port), PGUSER = module.database.username,
    APP_USER = module.database.app_username, APP_SECRET_ARN = module.database.app_secret_arn, AWS_DEFAULT_REGION = var.region,
    CLUSTER  = module.platform.cluster_name, SERVICES = join(",", [module.gateway.service_name, module.mlflow.service_name, module.runner.service_name])
  }
  secrets              = { PGPASSWORD = "${module.database.master_secret_arn}:password::" }
  secrets_kms_key_arns = [module.database.kms_key_arn]
  task_policy_statements = [
    { Effect = "Allow", Action = ["secretsmanager:PutSecretValue"], Resource = module.database.app_secret_arn },
    { Effect = "Allow", Action = ["kms:GenerateDataKey", "kms:Encrypt"], Resource = module.database.kms_key_arn },
    {
      Effect    = "Allow", Action = ["ecs:UpdateService"]
      Resource  = [for s in [module.gateway.service_name, module.mlflow.service_name, module.runner.service_name] : "arn:aws:ecs:${var.region}:*:service/${module.platform.cluster_name}/${s}"]
      Condition = { ArnEquals = { "ecs:cluster" = module.platform.cluster_arn } }
    }
  ]
  cluster_arn         = local.service_common.cluster_arn
  vpc_id              = local.service_common.vpc_id
  subnet_ids          = local.service_common.subnet_ids
  security_group_id   = local.service_common.security_group_id
  efs_file_system_id  = local.service_common.efs_file_system_id
  efs_access_point_id = local.service_common.efs_access_point_id
  efs_arn             = local.service_common.efs_arn
  logs_kms_key_arn    = local.service_common.logs_kms_key_arn
  tags                = var.tags
}

module "alarms" {
  source                          = "../alarms"
  name_prefix                     = var.name_prefix
  alb_arn_suffix                  = module.platform.alb_arn_suffix
  gateway_target_group_arn_suffix = module.gateway.target_group_arn_suffix
  db_instance_id                  = "${var.name_prefix}-postgres"
  efs_file_system_id              = module.platform.efs_file_system_id
  alarm_emails                    = var.alarm_emails
  tags                            = var.tags
}
