output "workspace_id" {
  description = "AMP workspace (query it with Grafana's SigV4 data source: the ops/grafana dashboards)."
  value       = aws_prometheus_workspace.this.id
}

output "prometheus_endpoint" {
  description = "Query endpoint of the AMP workspace."
  value       = aws_prometheus_workspace.this.prometheus_endpoint
}

output "gateway_discovery_arn" {
  description = "Cloud Map service the gateway tasks register in."
  value       = aws_service_discovery_service.gateway.arn
}

output "gateway_dns_name" {
  description = "DNS name resolving to every gateway task."
  value       = local.gateway_dns
}
