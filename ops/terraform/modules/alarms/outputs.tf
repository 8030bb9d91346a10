output "topic_arn" {
  description = "SNS topic of the alarms (subscribe PagerDuty's CloudWatch integration to it)."
  value       = aws_sns_topic.alarms.arn
}
