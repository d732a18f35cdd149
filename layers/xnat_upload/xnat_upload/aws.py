"""boto3 clients sized to the work, created once per container (warm invocations reuse them).

Example::

    s3 = s3_client(settings)  # honours AWS_ENDPOINT_URL, so moto's server works unchanged
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import replace
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


def with_ca_bundle(settings: Settings, s3: S3Client) -> Settings:
    """The settings with XNAT_CA_BUNDLE pointing at a local copy of XNAT_CA_BUNDLE_S3_URI's object (a
    hospital's private CA), read once per container; the settings as they are without one."""
    if not settings.ca_bundle_s3_uri or settings.ca_bundle:
        return settings
    return replace(settings, ca_bundle=_ca_bundle_file(settings.ca_bundle_s3_uri, s3))


@lru_cache(maxsize=2)
def _ca_bundle_file(uri: str, s3: S3Client) -> str:
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    # Lambda's only writable place; the file outlives the invocation, as the container does.
    path = os.path.join(tempfile.gettempdir(), "xnat-ca-bundle.pem")
    with open(path + ".part", "wb") as out:
        out.write(body)
    os.replace(path + ".part", path)
    return path
