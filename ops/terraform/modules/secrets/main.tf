# The kit's secrets, one Secrets Manager secret each, encrypted with this module's key. Terraform creates them
# empty: an operator sets each value once (aws secretsmanager put-secret-value), so no secret value ever sits in
# Terraform state, a variable file or settings.ini. The services read them into the environment at start:
# AUTOTRADER_SLACK_WEBHOOK_URL, AUTOTRADER_PAGERDUTY_ROUTING_KEY, AUTOTRADER_SMTP_PASSWORD,
# AUTOTRADER_OANDA_TOKEN, AUTOTRADER_BINANCE_API_KEY / _SECRET, AUTOTRADER_ADMIN_TOKEN.

data "aws_caller_identity" "current" {}

resource "aws_kms_key" "secrets" {
  description             = "${var.name_prefix}: application secrets"
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

resource "aws_secretsmanager_secret" "this" {
  #checkov:skip=CKV2_AWS_57:third-party tokens (Slack, PagerDuty, brokers) cannot be rotated by a Lambda; ops/runbooks/procedures/secrets.md describes manual rotation
  for_each                = toset(var.secret_names)
  name                    = "${var.name_prefix}/${each.value}"
  description             = "AutoTrader: environment variable ${each.value}"
  kms_key_id              = aws_kms_key.secrets.arn
  recovery_window_in_days = 30
  tags                    = var.tags
}
