"""`make serve` (python -m devserver.serve): the whole local stack in one process, used like AWS."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
import requests

from tests.processes import local_stack_served

from .conftest import wait_for_job

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def local_stack() -> Iterator[dict[str, str]]:
    with local_stack_served() as served:
        assert {"AWS_ENDPOINT_URL", "DATA_BUCKET", "XNAT_UPLOAD_API"} <= set(served.exports)
        yield served.exports


def test_a_job_posted_to_the_local_api_runs_through_the_queues(local_stack: dict[str, str]) -> None:
    s3 = boto3.client(
        "s3",
        endpoint_url=local_stack["AWS_ENDPOINT_URL"],
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    s3.put_object(Bucket=local_stack["DATA_BUCKET"], Key="net-1/upload/ct.nii.gz", Body=b"ct volume")
    api = local_stack["XNAT_UPLOAD_API"]
    manifest = {
        "central_hub_project_id": "CHP-001",
        "accession_id": "ACC0001",
        "net_id": "net-1",
        "scan_id": "1",
        "resource_id": "NIFTI",
        "files_relative_paths_to_upload": ["ct.nii.gz"],
        "job_id": "served",
    }

    assert requests.post(f"{api}/jobs", json=manifest, timeout=30).status_code == 202
    result = wait_for_job(api, "served")

    assert result.status_code == 200
    assert result.json()["status"] == "succeeded"
    listed = requests.get(f"{api}/jobs/served", params={"files": "all"}, timeout=30).json()
    assert listed["files"][0]["url"].endswith("/files/ct.nii.gz")


def test_the_sync_route_of_the_local_api_answers_with_urls(local_stack: dict[str, str]) -> None:
    body = {
        "central_hub_project_id": "CHP-001",
        "accession_id": "ACC0001",
        "scan_id": "2",
        "resource_id": "NIFTI",
        "files": ["missing.nii"],
    }
    response = requests.put(f"{local_stack['XNAT_UPLOAD_API']}/upload/images/net-1", json=body, timeout=30)
    assert response.status_code == 404
    assert response.json()["error"] == "object_not_found"
