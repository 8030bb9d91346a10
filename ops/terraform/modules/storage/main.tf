# S3 buckets of AutoTrader: the raw archive, feature-store backups and MLflow artifacts, plus the access-log bucket.
# Every bucket: SSE-KMS with the module's customer-managed key, versioning, public access blocked, lifecycle rules,
# server access logging to the log bucket, and EventBridge notifications (object events are auditable and can
# trigger `autotrader archive verify`).

data "aws_caller_identity" "current" {}

locals {
  buckets = {
    raw    = { name = "${var.name_prefix}-raw-archive", noncurrent_days = var.noncurrent_days_raw }
    store  = { name = "${var.name_prefix}-feature-store", noncurrent_days = var.noncurrent_days }
    mlflow = { name = "${var.name_prefix}-mlflow-artifacts", noncurrent_days = var.noncurrent_days }
  }
}

resource "aws_kms_key" "data" {
  description             = "${var.name_prefix}: S3 data buckets"
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
        Sid       = "S3LogDelivery"
        Effect    = "Allow"
        Principal = { Service = "logging.s3.amazonaws.com" }
        Action    = ["kms:GenerateDataKey", "kms:Decrypt"]
        Resource  = "*"
      }
    ]
  })
  tags = var.tags
}

resource "aws_kms_alias" "data" {
  name          = "alias/${var.name_prefix}-data"
  target_key_id = aws_kms_key.data.key_id
}

# ---------------------------------------------------------------------------- access logs
resource "aws_s3_bucket" "logs" {
  #checkov:skip=CKV_AWS_18:this is the access-log bucket; logging it into itself would loop
  #checkov:skip=CKV_AWS_144:access logs are not replicated; the data buckets are the ones that matter for DR
  #checkov:skip=CKV2_AWS_62:no consumer for event notifications of log objects
  #checkov:skip=CKV_AWS_145:S3 server access logging only delivers to buckets encrypted with SSE-S3 (AES256)
  bucket        = "${var.name_prefix}-access-logs"
  force_destroy = false
  tags          = var.tags
}

resource "aws_s3_bucket_server_side_encryption_configuration" "logs" {
  bucket = aws_s3_bucket.logs.id
  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm = "AES256"
    }
  }
}

resource "aws_s3_bucket_versioning" "logs" {
  bucket = aws_s3_bucket.logs.id
  versioning_configuration {
    status = "Enabled"
  }
}

resource "aws_s3_bucket_public_access_block" "logs" {
  bucket                  = aws_s3_bucket.logs.id
  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_lifecycle_configuration" "logs" {
  bucket = aws_s3_bucket.logs.id
  rule {
    id     = "expire-access-logs"
    status = "Enabled"
    filter {}
    expiration {
      days = var.log_retention_days
    }
    noncurrent_version_expiration {
      noncurrent_days = 30
    }
    abort_incomplete_multipart_upload {
      days_after_initiation = 7
    }
  }
}

resource "aws_s3_bucket_policy" "logs" {
  bucket = aws_s3_bucket.logs.id
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      {
        Sid       = "S3ServerAccessLogs"
        Effect    = "Allow"
        Principal = { Service = "logging.s3.amazonaws.com" }
        Action    = "s3:PutObject"
        Resource  = "${aws_s3_bucket.logs.arn}/*"
        Condition = { StringEquals = { "aws:SourceAccount" = data.aws_caller_identity.current.account_id } }
      },
      {
        Sid       = "LoadBalancerAccessLogs"
        Effect    = "Allow"
        Principal = { Service = "logdelivery.elasticloadbalancing.amazonaws.com" }
        Action    = "s3:PutObject"
        Resource  = "${aws_s3_bucket.logs.arn}/alb/*"
      },
      {
        Sid       = "TLSOnly"
        Effect    = "Deny"
        Principal = "*"
        Action    = "s3:*"
        Resource  = [aws_s3_bucket.logs.arn, "${aws_s3_bucket.logs.arn}/*"]
        Condition = { Bool = { "aws:SecureTransport" = "false" } }
      }
    ]
  })
}

# ---------------------------------------------------------------------------- data buckets
resource "aws_s3_bucket" "data" {
  for_each      = local.buckets
  bucket        = each.value.name
  force_destroy = false
  tags          = merge(var.tags, { "autotrader:bucket" = each.key })
}

resource "aws_s3_bucket_server_side_encryption_configuration" "data" {
  for_each = local.buckets
  bucket   = aws_s3_bucket.data[each.key].id
  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm     = "aws:kms"
      kms_master_key_id = aws_kms_key.data.arn
    }
    bucket_key_enabled = true
  }
}

resource "aws_s3_bucket_versioning" "data" {
  for_each = local.buckets
  bucket   = aws_s3_bucket.data[each.key].id
  versioning_configuration {
    status = "Enabled"
  }
}

resource "aws_s3_bucket_public_access_block" "data" {
  for_each                = local.buckets
  bucket                  = aws_s3_bucket.data[each.key].id
  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_logging" "data" {
  for_each      = local.buckets
  bucket        = aws_s3_bucket.data[each.key].id
  target_bucket = aws_s3_bucket.logs.id
  target_prefix = "${each.key}/"
}

resource "aws_s3_bucket_notification" "data" {
  for_each    = local.buckets
  bucket      = aws_s3_bucket.data[each.key].id
  eventbridge = true
}

# The raw archive is write-once (content-addressed keys, objects never rewritten): old versions only appear when an
# object was repaired, and are kept noncurrent_days_raw. Current objects move to cheaper storage after 90 days.
resource "aws_s3_bucket_lifecycle_configuration" "data" {
  for_each = local.buckets
  bucket   = aws_s3_bucket.data[each.key].id
  rule {
    id     = "noncurrent-versions"
    status = "Enabled"
    filter {}
    noncurrent_version_expiration {
      noncurrent_days = each.value.noncurrent_days
    }
    abort_incomplete_multipart_upload {
      days_after_initiation = 7
    }
  }
  rule {
    id     = "infrequent-access"
    status = each.key == "raw" ? "Enabled" : "Disabled"
    filter {}
    transition {
      days          = 90
      storage_class = "STANDARD_IA"
    }
  }
}

resource "aws_s3_bucket_policy" "data" {
  for_each = local.buckets
  bucket   = aws_s3_bucket.data[each.key].id
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Sid       = "TLSOnly"
      Effect    = "Deny"
      Principal = "*"
      Action    = "s3:*"
      Resource  = [aws_s3_bucket.data[each.key].arn, "${aws_s3_bucket.data[each.key].arn}/*"]
      Condition = { Bool = { "aws:SecureTransport" = "false" } }
    }]
  })
}

# ---------------------------------------------------------------------------- replication (by default)
# Every data bucket is replicated to a second region (provider aws.replica): to var.replica_bucket_arns where given
# (buckets managed elsewhere), else to a replica bucket made here with its own KMS key in that region. A lost region,
# or a deleted, overwritten or corrupted object, can be restored from it; the raw archive is what
# `autotrader store rebuild` needs. var.replicate = false turns the replicas made here off.
locals {
  local_replicas = var.replicate ? { for k, v in local.buckets : k => v if !contains(keys(var.replica_bucket_arns), k) } : {}
  replica_arns   = merge({ for k, b in aws_s3_bucket.replica : k => b.arn }, var.replica_bucket_arns)
  replica_kms    = { for k in keys(local.replica_arns) : k => contains(keys(var.replica_bucket_arns), k) ? var.replica_kms_key_arns[0] : aws_kms_key.replica[0].arn }
}

data "aws_region" "replica" {
  provider = aws.replica
}

resource "aws_kms_key" "replica" {
  provider                = aws.replica
  count                   = length(local.local_replicas) > 0 ? 1 : 0
  description             = "${var.name_prefix}: S3 data bucket replicas"
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

resource "aws_s3_bucket" "replica" {
  #checkov:skip=CKV_AWS_144:this bucket is the replica (second region); replicating the replica again would only double the cost
  #checkov:skip=CKV_AWS_18:written only by S3 replication, read only to restore; access is recorded by CloudTrail, and S3 access logs cannot cross regions to the log bucket
  provider      = aws.replica
  for_each      = local.local_replicas
  bucket        = "${each.value.name}-replica"
  force_destroy = false
  tags          = merge(var.tags, { "autotrader:bucket" = "${each.key}-replica" })
}

resource "aws_s3_bucket_server_side_encryption_configuration" "replica" {
  provider = aws.replica
  for_each = local.local_replicas
  bucket   = aws_s3_bucket.replica[each.key].id
  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm     = "aws:kms"
      kms_master_key_id = aws_kms_key.replica[0].arn
    }
    bucket_key_enabled = true
  }
}

resource "aws_s3_bucket_versioning" "replica" {
  provider = aws.replica
  for_each = local.local_replicas
  bucket   = aws_s3_bucket.replica[each.key].id
  versioning_configuration {
    status = "Enabled"
  }
}

resource "aws_s3_bucket_public_access_block" "replica" {
  provider                = aws.replica
  for_each                = local.local_replicas
  bucket                  = aws_s3_bucket.replica[each.key].id
  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_notification" "replica" {
  provider    = aws.replica
  for_each    = local.local_replicas
  bucket      = aws_s3_bucket.replica[each.key].id
  eventbridge = true
}

resource "aws_s3_bucket_lifecycle_configuration" "replica" {
  provider = aws.replica
  for_each = local.local_replicas
  bucket   = aws_s3_bucket.replica[each.key].id
  rule {
    id     = "noncurrent-versions"
    status = "Enabled"
    filter {}
    noncurrent_version_expiration {
      noncurrent_days = each.value.noncurrent_days
    }
    abort_incomplete_multipart_upload {
      days_after_initiation = 7
    }
  }
}

resource "aws_s3_bucket_policy" "replica" {
  provider = aws.replica
  for_each = local.local_replicas
  bucket   = aws_s3_bucket.replica[each.key].id
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Sid       = "TLSOnly"
      Effect    = "Deny"
      Principal = "*"
      Action    = "s3:*"
      Resource  = [aws_s3_bucket.replica[each.key].arn, "${aws_s3_bucket.replica[each.key].arn}/*"]
      Condition = { Bool = { "aws:SecureTransport" = "false" } }
    }]
  })
}

resource "aws_iam_role" "replication" {
  count = length(local.replica_arns) > 0 ? 1 : 0
  name  = "${var.name_prefix}-s3-replication"
  assume_role_policy = jsonencode({
    Version   = "2012-10-17"
    Statement = [{ Effect = "Allow", Principal = { Service = "s3.amazonaws.com" }, Action = "sts:AssumeRole" }]
  })
  tags = var.tags
}

resource "aws_iam_role_policy" "replication" {
  count = length(local.replica_arns) > 0 ? 1 : 0
  name  = "replicate"
  role  = aws_iam_role.replication[0].id
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      {
        Effect   = "Allow"
        Action   = ["s3:GetReplicationConfiguration", "s3:ListBucket"]
        Resource = [for k, b in aws_s3_bucket.data : b.arn if contains(keys(local.replica_arns), k)]
      },
      {
        Effect   = "Allow"
        Action   = ["s3:GetObjectVersionForReplication", "s3:GetObjectVersionAcl", "s3:GetObjectVersionTagging"]
        Resource = [for k, b in aws_s3_bucket.data : "${b.arn}/*" if contains(keys(local.replica_arns), k)]
      },
      {
        Effect   = "Allow"
        Action   = ["s3:ReplicateObject", "s3:ReplicateDelete", "s3:ReplicateTags"]
        Resource = [for arn in values(local.replica_arns) : "${arn}/*"]
      },
      {
        Effect   = "Allow"
        Action   = ["kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey"]
        Resource = distinct(concat([aws_kms_key.data.arn], values(local.replica_kms)))
      }
    ]
  })
}

# One replication configuration per bucket (checkov links each bucket to its own; a for_each would link one).
resource "aws_s3_bucket_replication_configuration" "raw" {
  count  = var.replicate || contains(keys(var.replica_bucket_arns), "raw") ? 1 : 0
  bucket = aws_s3_bucket.data["raw"].id
  role   = aws_iam_role.replication[0].arn
  rule {
    id     = "replicate-all"
    status = "Enabled"
    filter {}
    delete_marker_replication {
      status = "Disabled"
    }
    source_selection_criteria {
      sse_kms_encrypted_objects {
        status = "Enabled"
      }
    }
    destination {
      bucket = local.replica_arns["raw"]
      encryption_configuration {
        replica_kms_key_id = local.replica_kms["raw"]
      }
    }
  }
  depends_on = [aws_s3_bucket_versioning.data, aws_s3_bucket_versioning.replica]
}

moved {
  from = aws_s3_bucket_replication_configuration.data["raw"]
  to   = aws_s3_bucket_replication_configuration.raw[0]
}

resource "aws_s3_bucket_replication_configuration" "store" {
  count  = var.replicate || contains(keys(var.replica_bucket_arns), "store") ? 1 : 0
  bucket = aws_s3_bucket.data["store"].id
  role   = aws_iam_role.replication[0].arn
  rule {
    id     = "replicate-all"
    status = "Enabled"
    filter {}
    delete_marker_replication {
      status = "Disabled"
    }
    source_selection_criteria {
      sse_kms_encrypted_objects {
        status = "Enabled"
      }
    }
    destination {
      bucket = local.replica_arns["store"]
      encryption_configuration {
        replica_kms_key_id = local.replica_kms["store"]
      }
    }
  }
  depends_on = [aws_s3_bucket_versioning.data, aws_s3_bucket_versioning.replica]
}

moved {
  from = aws_s3_bucket_replication_configuration.data["store"]
  to   = aws_s3_bucket_replication_configuration.store[0]
}

resource "aws_s3_bucket_replication_configuration" "mlflow" {
  count  = var.replicate || contains(keys(var.replica_bucket_arns), "mlflow") ? 1 : 0
  bucket = aws_s3_bucket.data["mlflow"].id
  role   = aws_iam_role.replication[0].arn
  rule {
    id     = "replicate-all"
    status = "Enabled"
    filter {}
    delete_marker_replication {
      status = "Disabled"
    }
    source_selection_criteria {
      sse_kms_encrypted_objects {
        status = "Enabled"
      }
    }
    destination {
      bucket = local.replica_arns["mlflow"]
      encryption_configuration {
        replica_kms_key_id = local.replica_kms["mlflow"]
      }
    }
  }
  depends_on = [aws_s3_bucket_versioning.data, aws_s3_bucket_versioning.replica]
}

moved {
  from = aws_s3_bucket_replication_configuration.data["mlflow"]
  to   = aws_s3_bucket_replication_configuration.mlflow[0]
}
