# One AutoTrader container as an ECS Fargate service: the signal gateway (`autotrader serve`), the MLflow tracking
# server, or the pipeline runner (`autotrader schedule run`; its task definition also runs the Airflow DAGs' tasks).
# Liveness and readiness are kept apart: the container health check (liveness: ECS replaces a container that fails
# it) and the load balancer's health check (readiness: traffic only to targets that pass it). ECS would also replace
# tasks that fail the load balancer's check, so with elb_replaces_tasks = false the service's grace period is the
# maximum: a gateway that is alive but not ready (no version deployed yet, a version still loading) keeps running
# and gets no traffic, instead of being killed before anything can be deployed. Least privilege: the task role gets only the policy
# statements the caller passes for this component; the execution role may pull the image, write this service's log
# group and read only the secrets listed for it. Settings arrive as AUTOTRADER__SECTION__KEY environment
# variables, secrets from Secrets Manager into the environment (never into settings.ini).

data "aws_region" "current" {}

locals {
  balanced = var.port != null && var.path_patterns != null
  # ECS ignores load-balancer health during the grace period: the maximum means "never replace a task for it"
  grace_period = local.balanced ? (var.elb_replaces_tasks ? 120 : 2147483647) : null
}

resource "aws_cloudwatch_log_group" "this" {
  name              = "/autotrader/${var.name_prefix}/${var.name}"
  retention_in_days = var.log_retention_days
  kms_key_id        = var.logs_kms_key_arn
  tags              = var.tags
}

resource "aws_iam_role" "execution" {
  name = "${var.name_prefix}-${var.name}-execution"
  assume_role_policy = jsonencode({
    Version   = "2012-10-17"
    Statement = [{ Effect = "Allow", Principal = { Service = "ecs-tasks.amazonaws.com" }, Action = "sts:AssumeRole" }]
  })
  tags = var.tags
}

resource "aws_iam_role_policy" "execution" {
  name = "pull-log-secrets"
  role = aws_iam_role.execution.id
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = concat(
      [
        { Effect = "Allow", Action = ["ecr:GetAuthorizationToken"], Resource = "*" },
        { Effect = "Allow", Action = ["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer", "ecr:BatchCheckLayerAvailability"], Resource = var.ecr_repository_arn },
        { Effect = "Allow", Action = ["logs:CreateLogStream", "logs:PutLogEvents"], Resource = "${aws_cloudwatch_log_group.this.arn}:*" }
      ],
      length(var.secrets) > 0 ? [
        { Effect = "Allow", Action = ["secretsmanager:GetSecretValue"], Resource = distinct([for v in values(var.secrets) : regex("^(arn:[^:]+:secretsmanager:[^:]+:[^:]+:secret:[^:]+)", v)[0]]) },
        { Effect = "Allow", Action = ["kms:Decrypt"], Resource = var.secrets_kms_key_arns }
      ] : []
    )
  })
}

resource "aws_iam_role" "task" {
  name = "${var.name_prefix}-${var.name}-task"
  assume_role_policy = jsonencode({
    Version   = "2012-10-17"
    Statement = [{ Effect = "Allow", Principal = { Service = "ecs-tasks.amazonaws.com" }, Action = "sts:AssumeRole" }]
  })
  tags = var.tags
}

resource "aws_iam_role_policy" "task" {
  name = "${var.name}-least-privilege"
  role = aws_iam_role.task.id
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = concat(var.task_policy_statements, [{
      Effect    = "Allow"
      Action    = ["elasticfilesystem:ClientMount", "elasticfilesystem:ClientWrite"]
      Resource  = var.efs_arn
      Condition = { StringEquals = { "elasticfilesystem:AccessPointArn" = "arn:aws:elasticfilesystem:${data.aws_region.current.name}:${split(":", var.efs_arn)[4]}:access-point/${var.efs_access_point_id}" } }
    }])
  })
}

resource "aws_ecs_task_definition" "this" {
  family                   = "${var.name_prefix}-${var.name}"
  requires_compatibilities = ["FARGATE"]
  network_mode             = "awsvpc"
  cpu                      = var.cpu
  memory                   = var.memory
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
  container_definitions = jsonencode([{
    name                   = var.name
    image                  = var.image
    essential              = true
    command                = var.command
    user                   = "10001:10001"
    readonlyRootFilesystem = true
    portMappings           = var.port == null ? [] : [{ containerPort = var.port, protocol = "tcp" }]
    environment            = [for k, v in merge({ AUTOTRADER__DATA__DIR = "/data", HOME = "/tmp" }, var.environment) : { name = k, value = v }]
    secrets                = [for k, v in var.secrets : { name = k, valueFrom = v }]
    mountPoints = [
      { sourceVolume = "data", containerPath = "/data", readOnly = false },
      { sourceVolume = "tmp", containerPath = "/tmp", readOnly = false }
    ]
    stopTimeout = var.stop_timeout
    healthCheck = var.health_check_command == null ? null : {
      command     = var.health_check_command
      interval    = 15
      timeout     = 5
      retries     = 3
      startPeriod = 60
    }
    logConfiguration = {
      logDriver = "awslogs"
      options = {
        awslogs-group         = aws_cloudwatch_log_group.this.name
        awslogs-region        = data.aws_region.current.name
        awslogs-stream-prefix = var.name
      }
    }
  }])
  tags = var.tags
}

# HTTPS to the targets too: every balanced container serves TLS (a certificate made at its start; the load balancer
# encrypts to its targets without verifying their certificates), so no request, admin token or MLflow password crosses
# the VPC in plain text.
resource "aws_lb_target_group" "this" {
  count                = local.balanced ? 1 : 0
  name                 = substr("${var.name_prefix}-${var.name}", 0, 32)
  port                 = var.port
  protocol             = "HTTPS"
  target_type          = "ip"
  vpc_id               = var.vpc_id
  deregistration_delay = 30
  health_check {
    protocol            = "HTTPS"
    path                = var.readiness_path
    matcher             = "200"
    interval            = 15
    timeout             = 5
    healthy_threshold   = 2
    unhealthy_threshold = 3
  }
  tags = var.tags
}

resource "aws_lb_listener_rule" "this" {
  count        = local.balanced ? 1 : 0
  listener_arn = var.listener_arn
  priority     = var.listener_priority
  action {
    type             = "forward"
    target_group_arn = aws_lb_target_group.this[0].arn
  }
  condition {
    path_pattern {
      values = var.path_patterns
    }
  }
  dynamic "condition" {
    for_each = var.host_headers == null ? [] : [1]
    content {
      host_header {
        values = var.host_headers
      }
    }
  }
  tags = var.tags
}

# create_service = false: a task definition only, started on demand (aws ecs run-task), e.g. the database bootstrap
resource "aws_ecs_service" "this" {
  count            = var.create_service ? 1 : 0
  name             = var.name
  cluster          = var.cluster_arn
  task_definition  = aws_ecs_task_definition.this.arn
  desired_count    = var.desired_count
  launch_type      = "FARGATE"
  platform_version = "LATEST"
  # single_instance (the runner: one scheduler holding a lock on EFS): stop the old task before starting the new one
  deployment_minimum_healthy_percent = var.single_instance ? 0 : (var.desired_count > 1 ? 50 : 100)
  deployment_maximum_percent         = var.single_instance ? 100 : 200
  health_check_grace_period_seconds  = local.grace_period
  enable_execute_command             = false
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
  dynamic "service_registries" {
    for_each = var.service_discovery_arn == null ? [] : [1]
    content {
      registry_arn = var.service_discovery_arn
    }
  }
  dynamic "load_balancer" {
    for_each = local.balanced ? [1] : []
    content {
      target_group_arn = aws_lb_target_group.this[0].arn
      container_name   = var.name
      container_port   = var.port
    }
  }
  tags = var.tags
}

moved {
  from = aws_ecs_service.this
  to   = aws_ecs_service.this[0]
}
