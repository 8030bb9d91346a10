terraform {
  required_version = ">= 1.10" # use_lockfile (S3 state locking without DynamoDB) needs 1.10
  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = "~> 5.70"
    }
  }
  # State in S3 with locking; the bucket and key come from a backend file kept outside the repository:
  #   terraform init -backend-config=backend.hcl   (bucket = "...", key = "autotrader/staging.tfstate", region = "...")
  backend "s3" {
    encrypt      = true
    use_lockfile = true
  }
}

provider "aws" {
  region = var.region
  default_tags {
    tags = {
      project     = "autotrader"
      environment = "staging"
      managed-by  = "terraform"
    }
  }
}

# The second region of the data buckets' replicas (modules/storage)
provider "aws" {
  alias  = "replica"
  region = var.replica_region
  default_tags {
    tags = {
      project     = "autotrader"
      environment = "staging"
      managed-by  = "terraform"
    }
  }
}
