# CloudWatch alarms on the infrastructure, to an encrypted SNS topic (subscribe PagerDuty / e-mail to it). The
# application's own alerts (drift, quality, pipelines, deployments) are Prometheus rules in ops/prometheus with one
# runbook each in ops/runbooks; these alarms cover what Prometheus cannot see from inside.

data "aws_caller_identity" "current" {}

resource "aws_kms_key" "sns" {
  description             = "${var.name_prefix}: alarm topic"
  enable_key_rotation     = true
  deletion_window_in_days = 30
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      {
        Sid       = "AccountAdministers"
        Effect    = "Allow"
        Principal = { AWS = "arn:aws:iam::${data.aws_caller_identity.current.account_id}:root" }
        Action    = "kms:*"
        Resource  = "*"
      },
      {
        Sid       = "CloudWatchAlarms"
        Effect    = "Allow"
        Principal = { Service = "cloudwatch.amazonaws.com" }
        Action    = ["kms:Decrypt", "kms:GenerateDataKey*"]
        Resource  = "*"
      }
    ]
  })
  tags = var.tags
}

resource "aws_sns_topic" "alarms" {
  name              = "${var.name_prefix}-alarms"
  kms_master_key_id = aws_kms_key.sns.arn
  tags              = var.tags
}

resource "aws_sns_topic_subscription" "email" {
  for_each  = toset(var.alarm_emails)
  topic_arn = aws_sns_topic.alarms.arn
  protocol  = "email"
  endpoint  = each.value
}

locals {
  alarms = {
    gateway-unhealthy-hosts = {
      description = "Gateway tasks failing the /readyz health check (ops/runbooks/alerts/AutoTraderGatewayDown.md)"
      namespace   = "AWS/ApplicationELB", metric = "UnHealthyHostCount", stat = "Maximum", threshold = 0, op = "GreaterThanThreshold"
      dimensions  = { LoadBalancer = var.alb_arn_suffix, TargetGroup = var.gateway_target_group_arn_suffix }
    }
    gateway-no-healthy-host = {
      description = "No gateway task passes /readyz: signals are not served (ops/runbooks/procedures/incident.md)"
      namespace   = "AWS/ApplicationELB", metric = "HealthyHostCount", stat = "Minimum", threshold = 1, op = "LessThanThreshold"
      dimensions  = { LoadBalancer = var.alb_arn_suffix, TargetGroup = var.gateway_target_group_arn_suffix }
    }
    gateway-5xx = {
      description = "Gateway answers 5xx (ops/runbooks/procedures/incident.md)"
      namespace   = "AWS/ApplicationELB", metric = "HTTPCode_Target_5XX_Count", stat = "Sum", threshold = var.max_5xx_per_minute, op = "GreaterThanThreshold"
      dimensions  = { LoadBalancer = var.alb_arn_suffix, TargetGroup = var.gateway_target_group_arn_suffix }
    }
    postgres-cpu = {
      description = "PostgreSQL CPU above 80 % (deployment state and MLflow share it)"
      namespace   = "AWS/RDS", metric = "CPUUtilization", stat = "Average", threshold = 80, op = "GreaterThanThreshold"
      dimensions  = { DBInstanceIdentifier = var.db_instance_id }
    }
    postgres-storage = {
      description = "PostgreSQL free storage below 5 GiB"
      namespace   = "AWS/RDS", metric = "FreeStorageSpace", stat = "Minimum", threshold = 5368709120, op = "LessThanThreshold"
      dimensions  = { DBInstanceIdentifier = var.db_instance_id }
    }
    efs-burst = {
      description = "EFS data folder: client connections dropped to zero (tasks cannot reach the store)"
      namespace   = "AWS/EFS", metric = "ClientConnections", stat = "Sum", threshold = 1, op = "LessThanThreshold"
      dimensions  = { FileSystemId = var.efs_file_system_id }
    }
  }
}

resource "aws_cloudwatch_metric_alarm" "this" {
  for_each            = local.alarms
  alarm_name          = "${var.name_prefix}-${each.key}"
  alarm_description   = each.value.description
  namespace           = each.value.namespace
  metric_name         = each.value.metric
  statistic           = each.value.stat
  dimensions          = each.value.dimensions
  period              = 60
  evaluation_periods  = 3
  datapoints_to_alarm = 3
  threshold           = each.value.threshold
  comparison_operator = each.value.op
  treat_missing_data  = "breaching"
  alarm_actions       = [aws_sns_topic.alarms.arn]
  ok_actions          = [aws_sns_topic.alarms.arn]
  tags                = var.tags
}
