"""boto3 clients sized to the work, created once per container (warm invocations reuse them).

Example::

    s3 = s3_client(settings)  # honours AWS_ENDPOINT_URL, so moto's server works unchanged
"""

from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING

from .config import Settings

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_sqs import SQSClient


@lru_cache(maxsize=4)
def s3_client(settings: Settings) -> S3Client:
    """One pooled client: HEADs run in parallel and every transfer holds one GET stream."""
    import boto3
    from botocore.config import Config

    from .transfer.s3_deadline import watch_s3_sockets

    pool = max(10, settings.upload_concurrency * 4 + 4)
    config = Config(max_pool_connections=pool, retries={"mode": "standard", "max_attempts": 5})
    client = boto3.client("s3", config=config)
    watch_s3_sockets(client)  # a transfer's S3 reads end at the invocation's deadline, as its XNAT calls do
    return client


@lru_cache(maxsize=4)
def sqs_client(settings: Settings) -> SQSClient:
    """For the job queue: a few sends and visibility changes per invocation."""
    import boto3
    from botocore.config import Config

    return boto3.client("sqs", config=Config(retries={"mode": "standard", "max_attempts": 5}))
