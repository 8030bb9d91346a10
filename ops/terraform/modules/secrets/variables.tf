variable "name_prefix" {
  description = "Prefix of every name, e.g. autotrader-prod."
  type        = string
}

variable "secret_names" {
  description = "Environment variable names, one secret each: every secret the kit reads (autotrader.config.SECRETS) but the AWS credentials, which come from the task role, and MLflow's: the user the services sign in with (MLFLOW_TRACKING_USERNAME/_PASSWORD, also the tracking server's admin) and the key that signs its forms."
  type        = list(string)
  default = [
    "AUTOTRADER_SLACK_WEBHOOK_URL",
    "AUTOTRADER_PAGERDUTY_ROUTING_KEY",
    "AUTOTRADER_SMTP_PASSWORD",
    "AUTOTRADER_ADMIN_TOKEN",
    "AUTOTRADER_OANDA_TOKEN",
    "AUTOTRADER_BINANCE_API_KEY",
    "AUTOTRADER_BINANCE_API_SECRET",
    "MLFLOW_TRACKING_USERNAME",
    "MLFLOW_TRACKING_PASSWORD",
    "MLFLOW_FLASK_SERVER_SECRET_KEY",
  ]
}

variable "tags" {
  description = "Tags of every resource."
  type        = map(string)
  default     = {}
}
