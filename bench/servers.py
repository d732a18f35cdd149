"""moto's server in a process of its own, and boto3 clients pointed at it (every bench section).

moto runs apart from the measured parties and from the XNAT emulator: its GIL is nobody else's,
so S3 and SQS answer as fast as this machine lets one process answer, whatever the others do.
It runs as `bench.motoserver`: moto with ListObjectsV2 pages served from an index (moto walks and
sorts the whole bucket for every page, which a benchmark of the service must not measure).

Example::

    with moto_server() as url:
        s3 = client(url, "s3")
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import requests

from devserver.local_s3 import CREDENTIALS, REGION, LocalAws

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def moto_server() -> Iterator[str]:
    """moto's S3 + SQS server in its own process; yields its URL and always stops it."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "bench.motoserver", "-H", "127.0.0.1", "-p", str(port)],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                requests.get(url + "/moto-api/", timeout=1)
                break
            except requests.ConnectionError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise RuntimeError("moto's server did not start") from None
                time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def client(url: str, service: str, **kwargs: Any) -> Any:
    """A boto3 client for moto's server at `url` (fake credentials, the local region)."""
    import boto3

    return boto3.client(
        service,
        endpoint_url=url,
        region_name=REGION,
        aws_access_key_id=CREDENTIALS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        **kwargs,
    )


class ExternalAws(LocalAws):
    """`LocalAws` for a moto server someone else started (`moto_server`): `LocalStack` builds its
    bucket, queues and notification there, and never starts or stops the server."""

    def __init__(self, url: str) -> None:
        self.url = url

    def start(self) -> ExternalAws:
        return self

    def stop(self) -> None:
        return None
