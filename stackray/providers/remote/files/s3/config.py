from __future__ import annotations

from pydantic import Field

from stackray.providers.utils.files import FilesProviderConfig


class S3FilesConfig(FilesProviderConfig):
    """Settings of the `remote::s3` files provider."""

    bucket_name: str = Field(min_length=3, description="The bucket holding the files.")
    region: str = Field(default="us-east-1", description="The bucket's region.")
    aws_access_key_id: str | None = Field(
        default=None,
        description="Access key id; unset: boto3's usual credential chain (environment, "
        "~/.aws, instance role).",
    )
    aws_secret_access_key: str | None = Field(
        default=None, repr=False, description="Secret access key, with `aws_access_key_id`."
    )
    aws_session_token: str | None = Field(
        default=None, repr=False, description="Session token of temporary credentials."
    )
    endpoint_url: str | None = Field(
        default=None,
        description="URL of an S3-compatible service (MinIO, Ceph, R2 ...); unset: AWS.",
    )
    auto_create_bucket: bool = Field(
        default=False, description="Create the bucket at start when it does not exist."
    )
    key_prefix: str = Field(
        default="",
        description="Prefix of every object key (e.g. 'stackray/files/'), to share a bucket.",
    )
    connect_timeout_s: float = Field(default=10.0, gt=0, description="Connect timeout.")
    read_timeout_s: float = Field(default=60.0, gt=0, description="Read timeout.")
