"""`remote::s3`: files in an S3 bucket (AWS or any S3-compatible service)."""
