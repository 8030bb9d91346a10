# Amazon MWAA (managed Apache Airflow 3) for the scale-out scheduler: DAGs exported by `autotrader schedule airflow`
# with [airflow] run_with = ecs (settings: the composition's airflow_settings output) are uploaded to the dags/ prefix
# of this module's bucket. Each DAG task starts the kit's image as an ECS task of the pipeline task definition
# (EcsRunTaskOperator, from the Amazon provider that MWAA installs): the same `autotrader run …` as the embedded
# scheduler, so reports are identical across engines; no requirements or plugins are needed on the MWAA workers.
# Private web server, every log type on.

data "aws_caller_identity" "current" {}
data "aws_region" "current" {}

resource "aws_s3_bucket" "dags" {
  #checkov:skip=CKV_AWS_144:DAGs are generated from the repository (autotrader schedule airflow); no replica needed
  #checkov:skip=CKV2_AWS_62:MWAA polls the bucket; no event consumer
  bucket = "${var.name_prefix}-airflow"
  tags   = var.tags
}

resource "aws_s3_bucket_versioning" "dags" {
  bucket = aws_s3_bucket.dags.id
  versioning_configuration {
    status = "Enabled"
  }
}

resource "aws_s3_bucket_server_side_encryption_configuration" "dags" {
  bucket = aws_s3_bucket.dags.id
  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm     = "aws:kms"
      kms_master_key_id = var.kms_key_arn
    }
  }
}

resource "aws_s3_bucket_public_access_block" "dags" {
  bucket                  = aws_s3_bucket.dags.id
  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_logging" "dags" {
  bucket        = aws_s3_bucket.dags.id
  target_bucket = var.log_bucket
  target_prefix = "airflow/"
}

resource "aws_s3_bucket_lifecycle_configuration" "dags" {
  bucket = aws_s3_bucket.dags.id
  rule {
    id     = "noncurrent-versions"
    status = "Enabled"
    filter {}
    noncurrent_version_expiration {
      noncurrent_days = 30
    }
    abort_incomplete_multipart_upload {
      days_after_initiation = 7
    }
  }
}

resource "aws_security_group" "airflow" {
  name        = "${var.name_prefix}-airflow"
  description = "MWAA environment"
  vpc_id      = var.vpc_id
  tags        = var.tags
}

resource "aws_vpc_security_group_ingress_rule" "self" {
  #checkov:skip=CKV_AWS_24:self-referencing rule: only members of this security group, never 0.0.0.0/0 (MWAA requires it)
  #checkov:skip=CKV_AWS_25:self-referencing rule: only members of this security group, never 0.0.0.0/0 (MWAA requires it)
  #checkov:skip=CKV_AWS_260:self-referencing rule: only members of this security group, never 0.0.0.0/0 (MWAA requires it)
  security_group_id            = aws_security_group.airflow.id
  referenced_security_group_id = aws_security_group.airflow.id
  ip_protocol                  = "tcp"
  from_port                    = 0
  to_port                      = 65535
  description                  = "MWAA components talk to each other"
}

resource "aws_vpc_security_group_egress_rule" "https" {
  security_group_id = aws_security_group.airflow.id
  cidr_ipv4         = "0.0.0.0/0"
  ip_protocol       = "tcp"
  from_port         = 443
  to_port           = 443
  description       = "AWS APIs (S3, logs, ECS RunTask) over HTTPS"
}

resource "aws_vpc_security_group_egress_rule" "vpc" {
  security_group_id = aws_security_group.airflow.id
  cidr_ipv4         = var.vpc_cidr
  ip_protocol       = "tcp"
  from_port         = 0
  to_port           = 65535
  description       = "inside the VPC: the metadata database and the workers"
}

resource "aws_iam_role" "airflow" {
  name = "${var.name_prefix}-airflow"
  assume_role_policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Effect    = "Allow"
      Principal = { Service = ["airflow.amazonaws.com", "airflow-env.amazonaws.com"] }
      Action    = "sts:AssumeRole"
    }]
  })
  tags = var.tags
}

resource "aws_iam_role_policy" "airflow" {
  name = "mwaa-least-privilege"
  role = aws_iam_role.airflow.id
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      { Effect = "Allow", Action = ["s3:GetObject*", "s3:GetBucket*", "s3:List*"], Resource = [aws_s3_bucket.dags.arn, "${aws_s3_bucket.dags.arn}/*"] },
      {
        Effect   = "Allow"
        Action   = ["logs:CreateLogStream", "logs:CreateLogGroup", "logs:PutLogEvents", "logs:GetLogEvents", "logs:GetLogRecord", "logs:GetLogGroupFields", "logs:GetQueryResults"]
        Resource = "arn:aws:logs:${data.aws_region.current.name}:${data.aws_caller_identity.current.account_id}:log-group:airflow-${var.name_prefix}-*"
      },
      { Effect = "Allow", Action = ["cloudwatch:PutMetricData"], Resource = "*", Condition = { StringEquals = { "cloudwatch:namespace" = "AmazonMWAA" } } },
      {
        Effect   = "Allow"
        Action   = ["sqs:ChangeMessageVisibility", "sqs:DeleteMessage", "sqs:GetQueueAttributes", "sqs:GetQueueUrl", "sqs:ReceiveMessage", "sqs:SendMessage"]
        Resource = "arn:aws:sqs:${data.aws_region.current.name}:*:airflow-celery-*"
      },
      {
        Effect    = "Allow"
        Action    = ["kms:Decrypt", "kms:DescribeKey", "kms:GenerateDataKey*", "kms:Encrypt"]
        Resource  = var.kms_key_arn
        Condition = { StringLike = { "kms:ViaService" = ["sqs.${data.aws_region.current.name}.amazonaws.com", "s3.${data.aws_region.current.name}.amazonaws.com"] } }
      },
      # start the pipeline task definition on this cluster, follow it, stop it when the Airflow task is killed
      {
        Effect    = "Allow"
        Action    = ["ecs:RunTask"]
        Resource  = "arn:aws:ecs:${data.aws_region.current.name}:${data.aws_caller_identity.current.account_id}:task-definition/${var.task_definition_family}:*"
        Condition = { ArnEquals = { "ecs:cluster" = var.cluster_arn } }
      },
      {
        Effect    = "Allow"
        Action    = ["ecs:DescribeTasks", "ecs:StopTask"]
        Resource  = "arn:aws:ecs:${data.aws_region.current.name}:${data.aws_caller_identity.current.account_id}:task/*"
        Condition = { ArnEquals = { "ecs:cluster" = var.cluster_arn } }
      },
      # RunTask hands both roles of the task definition to ECS: the task role and the execution role
      {
        Effect    = "Allow"
        Action    = ["iam:PassRole"]
        Resource  = var.task_role_arns
        Condition = { StringEquals = { "iam:PassedToService" = "ecs-tasks.amazonaws.com" } }
      },
      # the operator shows the task's log in Airflow and pushes its last line (the run's metrics) to XCom
      { Effect = "Allow", Action = ["logs:GetLogEvents", "logs:DescribeLogStreams"], Resource = ["${var.task_log_group_arn}:*"] }
    ]
  })
}

resource "aws_mwaa_environment" "this" {
  name                            = var.name_prefix
  airflow_version                 = var.airflow_version
  environment_class               = var.environment_class
  execution_role_arn              = aws_iam_role.airflow.arn
  source_bucket_arn               = aws_s3_bucket.dags.arn
  dag_s3_path                     = "dags/"
  kms_key                         = var.kms_key_arn
  webserver_access_mode           = "PRIVATE_ONLY"
  max_workers                     = var.max_workers
  weekly_maintenance_window_start = "SUN:06:00"
  airflow_configuration_options = {
    "core.load_examples" = "false"
  }
  network_configuration {
    security_group_ids = [aws_security_group.airflow.id]
    subnet_ids         = slice(var.subnet_ids, 0, 2)
  }
  logging_configuration {
    dag_processing_logs {
      enabled   = true
      log_level = "INFO"
    }
    scheduler_logs {
      enabled   = true
      log_level = "INFO"
    }
    task_logs {
      enabled   = true
      log_level = "INFO"
    }
    webserver_logs {
      enabled   = true
      log_level = "WARNING"
    }
    worker_logs {
      enabled   = true
      log_level = "INFO"
    }
  }
  tags = var.tags
}
