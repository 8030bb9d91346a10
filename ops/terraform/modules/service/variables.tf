variable "name_prefix" {
  description = "Prefix of every name, e.g. autotrader-prod."
  type        = string
}

variable "name" {
  description = "Component name: gateway, mlflow or runner."
  type        = string
}

variable "image" {
  description = "Container image (the Dockerfile at the repository root), by digest or immutable tag."
  type        = string
}

variable "ecr_repository_arn" {
  description = "ECR repository the execution role may pull from."
  type        = string
}

variable "command" {
  description = "Container command, e.g. [\"autotrader\", \"serve\", \"--port\", \"8080\"]."
  type        = list(string)
}

variable "cpu" {
  description = "Fargate CPU units."
  type        = number
  default     = 1024
}

variable "memory" {
  description = "Fargate memory in MiB."
  type        = number
  default     = 2048
}

variable "create_service" {
  description = "Run the task definition as a service; false = a task definition only, started with aws ecs run-task."
  type        = bool
  default     = true
}

variable "desired_count" {
  description = "Running tasks."
  type        = number
  default     = 1
}

variable "port" {
  description = "Container port behind the load balancer; null = not load balanced (the runner)."
  type        = number
  default     = null
}

variable "path_patterns" {
  description = "Load-balancer paths routed to this service; null = not load balanced."
  type        = list(string)
  default     = null
}

variable "host_headers" {
  description = "Host names routed to this service (with path_patterns); null = any host."
  type        = list(string)
  default     = null
}

variable "listener_priority" {
  description = "Priority of the listener rule (unique per listener)."
  type        = number
  default     = 100
}

variable "listener_arn" {
  description = "HTTPS listener (platform module)."
  type        = string
  default     = null
}

variable "readiness_path" {
  description = "Load-balancer health check (readiness: traffic only to targets answering 200), e.g. the gateway's /readyz."
  type        = string
  default     = "/readyz"
}

variable "elb_replaces_tasks" {
  description = "Let ECS replace tasks that fail the load-balancer check; false when that check is a readiness check (liveness is the container health check)."
  type        = bool
  default     = false
}

variable "single_instance" {
  description = "At most one task at any time, also during a deployment (minimum 0 %, maximum 100 %): the old task stops before the new one starts."
  type        = bool
  default     = false
}

variable "stop_timeout" {
  description = "Seconds between SIGTERM and SIGKILL when ECS stops the container (Fargate: at most 120)."
  type        = number
  default     = 30
}

variable "service_discovery_arn" {
  description = "Cloud Map service the tasks register in (Prometheus finds them by DNS); null = none."
  type        = string
  default     = null
}

variable "health_check_command" {
  description = "Container health check (liveness: ECS replaces a container that fails it), e.g. the gateway's /healthz; null = none."
  type        = list(string)
  default     = null
}

variable "environment" {
  description = "Settings as environment variables (AUTOTRADER__SECTION__KEY = value); no secrets here."
  type        = map(string)
  default     = {}
}

variable "secrets" {
  description = "Environment variable name => Secrets Manager ARN (optionally ARN:json-key::) injected at start."
  type        = map(string)
  default     = {}
}

variable "secrets_kms_key_arns" {
  description = "KMS keys of those secrets (decrypt only)."
  type        = list(string)
  default     = []
}

variable "task_policy_statements" {
  description = "IAM statements of this component's task role (least privilege, written by the caller)."
  type        = any
}

variable "cluster_arn" {
  description = "ECS cluster."
  type        = string
}

variable "vpc_id" {
  description = "VPC of the target group."
  type        = string
}

variable "subnet_ids" {
  description = "Private subnets of the tasks."
  type        = list(string)
}

variable "security_group_id" {
  description = "Security group of the tasks (platform module)."
  type        = string
}

variable "efs_file_system_id" {
  description = "EFS file system of the data folder, mounted at /data."
  type        = string
}

variable "efs_access_point_id" {
  description = "EFS access point (uid/gid 10001)."
  type        = string
}

variable "efs_arn" {
  description = "EFS file system ARN."
  type        = string
}

variable "logs_kms_key_arn" {
  description = "KMS key of the log group."
  type        = string
}

variable "log_retention_days" {
  description = "Days the container logs are kept."
  type        = number
  default     = 400
}

variable "tags" {
  description = "Tags of every resource."
  type        = map(string)
  default     = {}
}
