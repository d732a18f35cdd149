"""boto3 clients sized to the work, created once per container (warm invocations reuse them).

Example::

    s3 = s3_client(settings)  # honours AWS_ENDPOINT_URL, so moto's server works unchanged
"""

from __future__ import annotations

from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
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
    import botocore.session
    from botocore.config import Config

    from .transfer.prefetch import FETCH_WORKERS
    from .transfer.s3_deadline import watch_s3_sockets

    # Reads ahead (transfer/prefetch.py) and a zip body's own reads may both be in flight, plus bookkeeping.
    pool = max(10, settings.upload_concurrency * 4 + 4, 2 * FETCH_WORKERS + 8)
    config = Config(max_pool_connections=pool, retries={"mode": "standard", "max_attempts": 5})
    core = botocore.session.get_session()
    core.get_component("response_parser_factory").set_parser_defaults(timestamp_parser=parse_timestamp)
    client = boto3.session.Session(botocore_session=core).client("s3", config=config)
    watch_s3_sockets(client)  # a transfer's S3 reads end at the invocation's deadline, as its XNAT calls do
    return client


def parse_timestamp(value: str | int | float) -> datetime:
    """S3's two timestamp forms, read without dateutil: a listing's ISO 8601 `LastModified` and a
    response's RFC 1123 `Last-Modified` header. botocore parses every one with dateutil's general
    parser (≈60 µs each, ≈1 µs here): a job's listing and reads parse one per object, on CPU the fetch
    threads and the zip body share. Anything else goes to botocore's own parser."""
    if isinstance(value, str):
        try:
            if value[:4].isdigit():
                parsed = datetime.fromisoformat(value)
                if parsed.tzinfo is not None:
                    return parsed.astimezone(UTC)
            elif value.endswith(" GMT"):
                return parsedate_to_datetime(value).astimezone(UTC)  # not strptime: %a and %b follow the locale
        except ValueError:
            pass
    from botocore.utils import parse_timestamp as botocore_parse_timestamp

    return botocore_parse_timestamp(value)


@lru_cache(maxsize=4)
def sqs_client(settings: Settings) -> SQSClient:
    """For the job queue: a few sends and visibility changes per invocation."""
    import boto3
    from botocore.config import Config

    return boto3.client("sqs", config=Config(retries={"mode": "standard", "max_attempts": 5}))
