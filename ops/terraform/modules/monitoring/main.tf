# Production monitoring: the project's Prometheus rules (ops/prometheus/autotrader-rules.yml, the same file the local
# stack and its promtool tests use) evaluated by Amazon Managed Service for Prometheus (AMP), alerts routed by AMP's
# alert manager to the alarm topic (SNS: e-mail, PagerDuty, the same receivers as the infrastructure alarms), and a
# collector on the ECS cluster: a Prometheus agent that scrapes the gateway tasks (found by DNS in Cloud Map) and a
# node-exporter whose textfile collector reads the metric files the pipelines write on EFS (/data/metrics), and
# remote-writes both to AMP. Job names are the local stack's (ops/docker/prometheus.yml): the rules select them.

data "aws_region" "current" {}

locals {
  # AMP's alert manager is managed: there is no `alertmanager` job to scrape, so its absence is not an alert here
  absent_alertmanager = "\n          or absent(up{job=\"alertmanager\"})"
  rules               = replace(var.rules_yaml, local.absent_alertmanager, "")
  gateway_dns         = "${aws_service_discovery_service.gateway.name}.${aws_service_discovery_private_dns_namespace.this.name}"
  agent_config = yamlencode({
    global = { scrape_interval = "15s", external_labels = { environment = var.name_prefix } }
    scrape_configs = [
      # the gateway serves HTTPS with a certificate made at its start: encrypted, its identity from the security group
      { job_name = "autotrader-gateway", metrics_path = "/metrics", scheme = "https", tls_config = { insecure_skip_verify = true }, dns_sd_configs = [{ names = [local.gateway_dns], type = "A", port = var.gateway_port }] },
      { job_name = "autotrader-textfiles", static_configs = [{ targets = ["127.0.0.1:9100"] }] },
      { job_name = "prometheus", static_configs = [{ targets = ["127.0.0.1:9090"] }] }
    ]
    remote_write = [{
      url   = "${aws_prometheus_workspace.this.prometheus_endpoint}api/v1/remote_write"
      sigv4 = { region = data.aws_region.current.name }
    }]
  })
}

# ---------------------------------------------------------------------------- AMP: rules and alert routing
resource "aws_cloudwatch_log_group" "amp" {
  name              = "/autotrader/${var.name_prefix}/prometheus-workspace"
  retention_in_days = var.log_retention_days
  kms_key_id        = var.logs_kms_key_arn
  tags              = var.tags
}

resource "aws_prometheus_workspace" "this" {
  alias       = var.name_prefix
  kms_key_arn = var.kms_key_arn
  logging_configuration {
    log_group_arn = "${aws_cloudwatch_log_group.amp.arn}:*"
  }
  tags = var.tags
}

resource "aws_prometheus_rule_group_namespace" "autotrader" {
  name         = "autotrader"
  workspace_id = aws_prometheus_workspace.this.id
  data         = local.rules
}

resource "aws_prometheus_alert_manager_definition" "this" {
  workspace_id = aws_prometheus_workspace.this.id
  definition = yamlencode({
    alertmanager_config = yamlencode({
      route = { receiver = "sns", group_by = ["alertname", "severity"], group_wait = "30s", group_interval = "5m", repeat_interval = "4h" }
      receivers = [{
        name = "sns"
        sns_configs = [{
          topic_arn  = var.alarm_topic_arn
          sigv4      = { region = data.aws_region.current.name }
          subject    = "[{{ .Status | toUpper }}] {{ .CommonLabels.alertname }}"
          attributes = { severity = "{{ .CommonLabels.severity }}" }
        }]
      }]
    })
  })
}

# ---------------------------------------------------------------------------- Cloud Map: the gateway tasks by DNS
resource "aws_service_discovery_private_dns_namespace" "this" {
  name        = "${var.name_prefix}.autotrader.internal"
  description = "AutoTrader services (Prometheus finds the gateway tasks here)"
  vpc         = var.vpc_id
  tags        = var.tags
}

resource "aws_service_discovery_service" "gateway" {
  name = "gateway"
  dns_config {
    namespace_id   = aws_service_discovery_private_dns_namespace.this.id
    routing_policy = "MULTIVALUE"
    dns_records {
      ttl  = 10
      type = "A"
    }
  }
  health_check_custom_config {
    failure_threshold = 1
  }
  tags = var.tags
}

# ---------------------------------------------------------------------------- the collector on the cluster
resource "aws_cloudwatch_log_group" "collector" {
  name              = "/autotrader/${var.name_prefix}/collector"
  retention_in_days = var.log_retention_days
  kms_key_id        = var.logs_kms_key_arn
  tags              = var.tags
}

resource "aws_iam_role" "execution" {
  name = "${var.name_prefix}-collector-execution"
  assume_role_policy = jsonencode({
    Version   = "2012-10-17"
    Statement = [{ Effect = "Allow", Principal = { Service = "ecs-tasks.amazonaws.com" }, Action = "sts:AssumeRole" }]
  })
  tags = var.tags
}

resource "aws_iam_role_policy" "execution" {
  name = "logs"
  role = aws_iam_role.execution.id
  policy = jsonencode({
    Version   = "2012-10-17"
    Statement = [{ Effect = "Allow", Action = ["logs:CreateLogStream", "logs:PutLogEvents"], Resource = "${aws_cloudwatch_log_group.collector.arn}:*" }]
  })
}

resource "aws_iam_role" "task" {
  name = "${var.name_prefix}-collector-task"
  assume_role_policy = jsonencode({
    Version   = "2012-10-17"
    Statement = [{ Effect = "Allow", Principal = { Service = "ecs-tasks.amazonaws.com" }, Action = "sts:AssumeRole" }]
  })
  tags = var.tags
}

resource "aws_iam_role_policy" "task" {
  name = "remote-write-read-metrics"
  role = aws_iam_role.task.id
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      { Effect = "Allow", Action = ["aps:RemoteWrite"], Resource = aws_prometheus_workspace.this.arn },
      {
        Effect    = "Allow"
        Action    = ["elasticfilesystem:ClientMount"]
        Resource  = var.efs_arn
        Condition = { StringEquals = { "elasticfilesystem:AccessPointArn" = "arn:aws:elasticfilesystem:${data.aws_region.current.name}:${split(":", var.efs_arn)[4]}:access-point/${var.efs_access_point_id}" } }
      }
    ]
  })
}

resource "aws_ecs_task_definition" "collector" {
  family                   = "${var.name_prefix}-collector"
  requires_compatibilities = ["FARGATE"]
  network_mode             = "awsvpc"
  cpu                      = 256
  memory                   = 512
  execution_role_arn       = aws_iam_role.execution.arn
  task_role_arn            = aws_iam_role.task.arn
  runtime_platform {
    operating_system_family = "LINUX"
    cpu_architecture        = "X86_64"
  }
  volume {
    name = "data"
    efs_volume_configuration {
      file_system_id     = var.efs_file_system_id
      transit_encryption = "ENABLED"
      authorization_config {
        access_point_id = var.efs_access_point_id
        iam             = "ENABLED"
      }
    }
  }
  volume {
    name = "tmp"
  }
  container_definitions = jsonencode([
    {
      name                   = "prometheus-agent"
      image                  = var.prometheus_image
      essential              = true
      user                   = "65534:65534"
      readonlyRootFilesystem = true
      # the configuration is rendered by Terraform (local.agent_config) and written to the scratch volume at start
      entryPoint  = ["/bin/sh", "-c"]
      command     = ["printf '%s' \"$PROMETHEUS_CONFIG\" > /tmp/prometheus.yml && exec /bin/prometheus --agent --config.file=/tmp/prometheus.yml --storage.agent.path=/tmp/agent --web.listen-address=127.0.0.1:9090"]
      environment = [{ name = "PROMETHEUS_CONFIG", value = local.agent_config }]
      mountPoints = [{ sourceVolume = "tmp", containerPath = "/tmp", readOnly = false }]
      logConfiguration = {
        logDriver = "awslogs"
        options   = { awslogs-group = aws_cloudwatch_log_group.collector.name, awslogs-region = data.aws_region.current.name, awslogs-stream-prefix = "prometheus-agent" }
      }
    },
    {
      name                   = "node-exporter"
      image                  = var.node_exporter_image
      essential              = true
      user                   = "10001:10001"
      readonlyRootFilesystem = true
      command = ["--collector.disable-defaults", "--collector.textfile", "--collector.textfile.directory=/data/metrics",
      "--web.listen-address=127.0.0.1:9100"]
      mountPoints = [{ sourceVolume = "data", containerPath = "/data", readOnly = true }]
      logConfiguration = {
        logDriver = "awslogs"
        options   = { awslogs-group = aws_cloudwatch_log_group.collector.name, awslogs-region = data.aws_region.current.name, awslogs-stream-prefix = "node-exporter" }
      }
    }
  ])
  tags = var.tags
}

resource "aws_ecs_service" "collector" {
  name                               = "collector"
  cluster                            = var.cluster_arn
  task_definition                    = aws_ecs_task_definition.collector.arn
  desired_count                      = 1
  launch_type                        = "FARGATE"
  platform_version                   = "LATEST"
  deployment_minimum_healthy_percent = 0
  deployment_maximum_percent         = 200
  propagate_tags                     = "SERVICE"
  deployment_circuit_breaker {
    enable   = true
    rollback = true
  }
  network_configuration {
    subnets          = var.subnet_ids
    security_groups  = [var.security_group_id]
    assign_public_ip = false
  }
  tags = var.tags
}
