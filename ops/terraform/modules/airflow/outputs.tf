output "dags_bucket" {
  description = "Upload the exported DAGs to s3://<this>/dags/."
  value       = aws_s3_bucket.dags.id
}

output "webserver_url" {
  description = "Airflow web server (private)."
  value       = aws_mwaa_environment.this.webserver_url
}
