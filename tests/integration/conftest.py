"""Real HTTP on loopback: moto's S3 server (one per test worker) and a fresh XNAT emulator per test."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from devserver.local_api import LocalApiServer
from devserver.local_s3 import LocalAws
from devserver.stack import DEMO_ACCESSION, DEMO_SECONDARY_ID, LocalStack
from xnat_upload.aws import s3_client, sqs_client

pytestmark = pytest.mark.integration


@pytest.fixture(scope="session")
def local_aws() -> Iterator[LocalAws]:
    with LocalAws() as aws:
        yield aws


@pytest.fixture
def stack(local_aws: LocalAws, monkeypatch: pytest.MonkeyPatch) -> Iterator[LocalStack]:
    """Both servers up, demo project seeded, the function's environment exported (fast retries)."""
    local_aws.reset()
    with LocalStack(aws=local_aws) as stack:
        for name, value in stack.environment(XNAT_RETRY_BASE_DELAY="0.01", XNAT_MAX_RETRIES="3").items():
            monkeypatch.setenv(name, value)
        s3_client.cache_clear()
        sqs_client.cache_clear()
        yield stack
    s3_client.cache_clear()
    sqs_client.cache_clear()


@pytest.fixture
def api(stack: LocalStack) -> Iterator[str]:
    """The API alone: jobs it queues run when the test drains the queues."""
    with LocalApiServer() as server:
        yield server.url


@pytest.fixture
def running_api(stack: LocalStack) -> Iterator[str]:
    """The API with the functions polling their queues in the background, as in AWS."""
    stack.start_pollers()
    try:
        with LocalApiServer() as server:
            yield server.url
    finally:
        stack.stop_pollers()


def make_manifest(**overrides: Any) -> dict[str, Any]:
    """The demo manifest with changes; the seeded project and session exist."""
    manifest: dict[str, Any] = {
        "central_hub_project_id": DEMO_SECONDARY_ID,
        "accession_id": DEMO_ACCESSION,
        "net_id": "net-1",
        "scan_id": "1",
        "resource_id": "NIFTI",
        "files_relative_paths_to_upload": ["ct_scan.nii.gz"],
        "exist_ok": False,
    }
    manifest.update(overrides)
    return manifest


def wait_for_job(api: str, job_id: str, timeout: float = 60) -> requests.Response:
    """GET the job until it is no longer queued or running: the pollers do the work; this only watches."""
    deadline = time.monotonic() + timeout
    while True:
        response = requests.get(f"{api}/jobs/{job_id}", timeout=30)
        if response.status_code != 202 or time.monotonic() > deadline:
            return response
        time.sleep(0.05)
