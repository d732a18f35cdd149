"""moto's S3 server (real HTTP, real S3 API) on a loopback port, and clients pointed at it.

Example::

    with LocalAws() as aws:
        aws.s3().create_bucket(Bucket="data")
        os.environ.update(aws.environment())  # boto3 everywhere now talks to moto
"""

from __future__ import annotations

import errno
import logging
from typing import TYPE_CHECKING, Any

import requests

from .ports import why_not_free

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

REGION = "us-east-1"
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_SESSION_TOKEN": "testing"}


class LocalAws:
    """A `ThreadedMotoServer` bound to 127.0.0.1 on a free port (S3, DynamoDB and SQS all answer)."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        from moto.server import ThreadedMotoServer

        self._server = ThreadedMotoServer(ip_address=host, port=port, verbose=False)
        self._host, self._port = host, port
        self.url = ""

    def start(self) -> LocalAws:
        # moto's start() waits without a timeout for a server that could not bind: refuse a taken port first.
        if (why := why_not_free(self._host, self._port)) is not None:
            raise OSError(errno.EADDRINUSE, f"port {self._port} on {self._host} {why}: moto's server cannot listen")
        logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one line per request drowns the output
        self._server.start()
        host, port = self._server.get_host_and_port()
        self.url = f"http://{host}:{port}"
        return self

    def stop(self) -> None:
        self._server.stop()

    def reset(self) -> None:
        """Forget every bucket, table and queue (moto's own reset endpoint)."""
        requests.post(f"{self.url}/moto-api/reset", timeout=10).raise_for_status()

    def __enter__(self) -> LocalAws:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def environment(self) -> dict[str, str]:
        """What to export so that boto3 (and the function under test) uses this server."""
        return {**CREDENTIALS, "AWS_ENDPOINT_URL": self.url, "AWS_DEFAULT_REGION": REGION, "AWS_REGION": REGION}

    def client(self, service: str, **kwargs: Any) -> Any:
        import boto3

        return boto3.client(
            service,
            endpoint_url=self.url,
            region_name=REGION,
            aws_access_key_id=CREDENTIALS["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
            aws_session_token=CREDENTIALS["AWS_SESSION_TOKEN"],
            **kwargs,
        )

    def s3(self) -> S3Client:
        return self.client("s3")
