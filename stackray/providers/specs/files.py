"""files providers."""

from __future__ import annotations

from stackray.api.datatypes import Api
from stackray.providers.spec import ProviderSpec

SPECS: tuple[ProviderSpec, ...] = (
    ProviderSpec(
        api=Api.files,
        provider_type="inline::localfs",
        impl="stackray.providers.inline.files.localfs.impl:LocalFSFiles",
        config_class="stackray.providers.inline.files.localfs.config:LocalFSFilesConfig",
        description="Files in a directory on this machine (or a shared file system).",
    ),
    ProviderSpec(
        api=Api.files,
        provider_type="remote::s3",
        impl="stackray.providers.remote.files.s3.adapter:S3Files",
        config_class="stackray.providers.remote.files.s3.config:S3FilesConfig",
        pip_packages=("boto3",),
        description="Files in an S3 bucket (AWS, or an S3-compatible service by endpoint_url).",
    ),
)
