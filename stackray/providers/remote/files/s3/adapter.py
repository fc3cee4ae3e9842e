"""`S3Files`: each file's bytes in one object of an S3 bucket, keyed by its id.

boto3 is synchronous: its calls run in worker threads so the replica's event loop keeps
serving other requests.
"""

from __future__ import annotations

import asyncio
from typing import Any

from stackray.api.errors import ConfigError, NotFoundError
from stackray.providers.remote.files.s3.config import S3FilesConfig
from stackray.providers.utils.files import check_file_id
from stackray.runtime.resolver import ProviderContext

_MISSING = {"404", "NoSuchKey", "NoSuchBucket", "NotFound"}


def _error_code(exc: Exception) -> str:
    response = getattr(exc, "response", None) or {}
    return str(response.get("Error", {}).get("Code", ""))


class S3Files:
    """Files in an S3 bucket."""

    def __init__(self, config: S3FilesConfig, deps: dict[Any, Any], context: ProviderContext):
        self.config = config
        self.bucket = config.bucket_name
        self._client: Any = None

    async def initialize(self) -> None:
        import boto3
        from botocore.config import Config

        c = self.config
        self._client = boto3.session.Session().client(
            "s3",
            region_name=c.region,
            endpoint_url=c.endpoint_url,
            aws_access_key_id=c.aws_access_key_id,
            aws_secret_access_key=c.aws_secret_access_key,
            aws_session_token=c.aws_session_token,
            config=Config(
                connect_timeout=c.connect_timeout_s,
                read_timeout=c.read_timeout_s,
                retries={"max_attempts": 3, "mode": "standard"},
            ),
        )
        await asyncio.to_thread(self._ensure_bucket)

    def _ensure_bucket(self) -> None:
        from botocore.exceptions import ClientError

        try:
            self._client.head_bucket(Bucket=self.bucket)
            return
        except ClientError as exc:
            if _error_code(exc) not in _MISSING:
                raise ConfigError(
                    f"S3 bucket {self.bucket!r} cannot be used: {_error_code(exc)}: {exc}"
                ) from None
        if not self.config.auto_create_bucket:
            raise ConfigError(
                f"S3 bucket {self.bucket!r} does not exist (set auto_create_bucket: true "
                "to create it at start)"
            )
        kwargs: dict[str, Any] = {"Bucket": self.bucket}
        if self.config.region != "us-east-1":
            kwargs["CreateBucketConfiguration"] = {"LocationConstraint": self.config.region}
        try:
            self._client.create_bucket(**kwargs)
        except ClientError as exc:
            if _error_code(exc) not in {"BucketAlreadyOwnedByYou", "BucketAlreadyExists"}:
                raise

    def key(self, file_id: str) -> str:
        return self.config.key_prefix + check_file_id(file_id)

    async def put_content(self, file_id: str, content: bytes) -> None:
        await asyncio.to_thread(
            self._client.put_object, Bucket=self.bucket, Key=self.key(file_id), Body=content
        )

    def _get(self, file_id: str) -> bytes:
        from botocore.exceptions import ClientError

        try:
            response = self._client.get_object(Bucket=self.bucket, Key=self.key(file_id))
        except ClientError as exc:
            if _error_code(exc) in _MISSING:
                raise NotFoundError(
                    f"the content of file {file_id!r} is missing from S3 bucket {self.bucket!r}",
                    field="file_id",
                ) from None
            raise
        body = response["Body"]
        try:
            return bytes(body.read())
        finally:
            body.close()

    async def get_content(self, file_id: str) -> bytes:
        return await asyncio.to_thread(self._get, file_id)

    async def delete_content(self, file_id: str) -> None:
        # S3 answers a delete of a missing key with success.
        await asyncio.to_thread(
            self._client.delete_object, Bucket=self.bucket, Key=self.key(file_id)
        )

    async def health(self) -> None:
        await asyncio.to_thread(self._client.head_bucket, Bucket=self.bucket)
