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
      },
      {
        Sid       = "ManagedPrometheusAlerts"
        Effect    = "Allow"
        Principal = { Service = "aps.amazonaws.com" }
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

# Amazon Managed Service for Prometheus (module monitoring) routes the Prometheus rules' alerts to this topic too
resource "aws_sns_topic_policy" "alarms" {
  arn = aws_sns_topic.alarms.arn
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      {
        Sid       = "AccountPublishes"
        Effect    = "Allow"
        Principal = { AWS = "arn:aws:iam::${data.aws_caller_identity.current.account_id}:root" }
        Action    = ["sns:Publish", "sns:GetTopicAttributes", "sns:Subscribe"]
        Resource  = aws_sns_topic.alarms.arn
      },
      {
        Sid       = "CloudWatchAndManagedPrometheus"
        Effect    = "Allow"
        Principal = { Service = ["cloudwatch.amazonaws.com", "aps.amazonaws.com"] }
        Action    = ["sns:Publish", "sns:GetTopicAttributes"]
        Resource  = aws_sns_topic.alarms.arn
        Condition = { StringEquals = { "aws:SourceAccount" = data.aws_caller_identity.current.account_id } }
      }
    ]
  })
}

resource "aws_sns_topic_subscription" "email" {
  for_each  = toset(var.alarm_emails)
  topic_arn = aws_sns_topic.alarms.arn
  protocol  = "email"
  endpoint  = each.value
}

locals {
  # Each alarm names its runbook (tests/test_ops_contracts.py checks the file exists) and says what a minute without
  # data means: for counts of events (5xx answers, unhealthy hosts) no data point is no event, so "notBreaching";
  # where silence itself is the failure (no healthy host reported, no EFS client, no database metrics) "breaching".
  alarms = {
    gateway-unhealthy-hosts = {
      description = "Gateway tasks alive but not ready (/readyz 503: no routing yet, a version loading or failing to load)"
      runbook     = "ops/runbooks/alerts/AutoTraderGatewayNotReady.md", missing = "notBreaching"
      namespace   = "AWS/ApplicationELB", metric = "UnHealthyHostCount", stat = "Maximum", threshold = 0, op = "GreaterThanThreshold"
      dimensions  = { LoadBalancer = var.alb_arn_suffix, TargetGroup = var.gateway_target_group_arn_suffix }
    }
    gateway-no-healthy-host = {
      description = "No gateway task passes /readyz: signals are not served"
      runbook     = "ops/runbooks/procedures/incident.md", missing = "breaching"
      namespace   = "AWS/ApplicationELB", metric = "HealthyHostCount", stat = "Minimum", threshold = 1, op = "LessThanThreshold"
      dimensions  = { LoadBalancer = var.alb_arn_suffix, TargetGroup = var.gateway_target_group_arn_suffix }
    }
    gateway-5xx = {
      description = "Gateway answers 5xx"
      runbook     = "ops/runbooks/alerts/AutoTraderGatewayErrorRate.md", missing = "notBreaching"
      namespace   = "AWS/ApplicationELB", metric = "HTTPCode_Target_5XX_Count", stat = "Sum", threshold = var.max_5xx_per_minute, op = "GreaterThanThreshold"
      dimensions  = { LoadBalancer = var.alb_arn_suffix, TargetGroup = var.gateway_target_group_arn_suffix }
    }
    postgres-cpu = {
      description = "PostgreSQL CPU above 80 % (deployment state and MLflow share it)"
      runbook     = "ops/runbooks/procedures/incident.md", missing = "breaching"
      namespace   = "AWS/RDS", metric = "CPUUtilization", stat = "Average", threshold = 80, op = "GreaterThanThreshold"
      dimensions  = { DBInstanceIdentifier = var.db_instance_id }
    }
    postgres-storage = {
      description = "PostgreSQL free storage below 5 GiB"
      runbook     = "ops/runbooks/procedures/incident.md", missing = "breaching"
      namespace   = "AWS/RDS", metric = "FreeStorageSpace", stat = "Minimum", threshold = 5368709120, op = "LessThanThreshold"
      dimensions  = { DBInstanceIdentifier = var.db_instance_id }
    }
    efs-no-clients = {
      description = "EFS data folder: client connections dropped to zero (tasks cannot reach the store)"
      runbook     = "ops/runbooks/procedures/disaster-recovery.md", missing = "breaching"
      namespace   = "AWS/EFS", metric = "ClientConnections", stat = "Sum", threshold = 1, op = "LessThanThreshold"
      dimensions  = { FileSystemId = var.efs_file_system_id }
    }
  }
}

resource "aws_cloudwatch_metric_alarm" "this" {
  for_each            = local.alarms
  alarm_name          = "${var.name_prefix}-${each.key}"
  alarm_description   = "${each.value.description}. Runbook: ${each.value.runbook}"
  namespace           = each.value.namespace
  metric_name         = each.value.metric
  statistic           = each.value.stat
  dimensions          = each.value.dimensions
  period              = 60
  evaluation_periods  = 3
  datapoints_to_alarm = 3
  threshold           = each.value.threshold
  comparison_operator = each.value.op
  treat_missing_data  = each.value.missing
  alarm_actions       = [aws_sns_topic.alarms.arn]
  ok_actions          = [aws_sns_topic.alarms.arn]
  tags                = var.tags
}
