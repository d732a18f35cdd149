"""Deployment options over real HTTP: images read from a bucket of their own (IMAGES_BUCKET), jobs
confined to their net (CONFINE_TO_NET), a private CA bundle fetched from S3 (XNAT_CA_BUNDLE_S3_URI)."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
import requests

from devserver.local_api import LocalApiServer
from devserver.local_s3 import LocalAws
from devserver.stack import LocalStack
from xnat_upload import Settings
from xnat_upload.aws import s3_client, sqs_client, with_ca_bundle

from .conftest import make_manifest

IMAGES_BUCKET = "hospital-pacs-export"


# -- images in an existing bucket ---------------------------------------------------------------------


@pytest.fixture
def images_stack(local_aws: LocalAws, monkeypatch: pytest.MonkeyPatch) -> Iterator[LocalStack]:
    """The local stack with its images in a bucket apart from the data bucket."""
    local_aws.reset()
    with LocalStack(aws=local_aws, images_bucket=IMAGES_BUCKET) as stack:
        for name, value in stack.environment(XNAT_RETRY_BASE_DELAY="0.01", XNAT_MAX_RETRIES="3").items():
            monkeypatch.setenv(name, value)
        s3_client.cache_clear()
        sqs_client.cache_clear()
        yield stack
    s3_client.cache_clear()
    sqs_client.cache_clear()


def test_images_are_read_from_the_images_bucket_and_nothing_is_written_there(images_stack: LocalStack) -> None:
    stack = images_stack
    stack.put_image("net-1", "ct_scan.nii.gz", b"ct-bytes")
    before = stack.s3().list_objects_v2(Bucket=IMAGES_BUCKET)["KeyCount"]

    stack.put_manifest("job-1", make_manifest())
    stack.drain()

    result = stack.read_result("job-1")
    assert result is not None and result["status"] == "succeeded", result
    assert result["source"]["bucket"] == IMAGES_BUCKET
    assert stack.xnat.list_files("PRJ001", "ACC0001", "1", "NIFTI") == {"ct_scan.nii.gz": b"ct-bytes"}
    assert stack.s3().list_objects_v2(Bucket=IMAGES_BUCKET)["KeyCount"] == before, "read-only"
    in_data_bucket = stack.s3().list_objects_v2(Bucket=stack.bucket, Prefix="net-1/")["KeyCount"]
    assert in_data_bucket == 0


def test_an_image_missing_from_the_images_bucket_is_refused_by_the_intake(images_stack: LocalStack) -> None:
    stack = images_stack
    # In the data bucket, where images no longer are read from: as good as missing.
    stack.s3().put_object(Bucket=stack.bucket, Key="net-1/upload/ct_scan.nii.gz", Body=b"ct")

    stack.put_manifest("job-2", make_manifest())
    stack.drain()

    result = stack.read_result("job-2")
    assert result is not None and result["status"] == "failed"
    assert result["error"]["code"] == "object_not_found"
    assert f"s3://{IMAGES_BUCKET}/net-1/upload/ct_scan.nii.gz" in result["error"]["message"] + str(result["files"])


# -- jobs confined to their net -------------------------------------------------------------------------


@pytest.fixture
def confined(stack: LocalStack, monkeypatch: pytest.MonkeyPatch) -> LocalStack:
    monkeypatch.setenv("CONFINE_TO_NET", "true")
    return stack


def test_a_manifest_under_another_nets_prefix_is_refused_with_a_clear_error(confined: LocalStack) -> None:
    stack = confined
    stack.put_image("net-1", "ct_scan.nii.gz", b"ct")

    stack.put_manifest("net-2/job-1", make_manifest(net_id="net-1"))
    stack.drain()

    result = stack.read_result("net-2/job-1")
    assert result is not None and result["status"] == "failed"
    assert result["error"]["code"] == "net_mismatch"
    message = result["error"]["message"]
    assert "'net-1'" in message and "manifests/net-2/" in message and "manifests/net-1/" in message
    assert stack.xnat.logins == 0, "refused before XNAT"


def test_a_manifest_outside_every_nets_prefix_is_refused(confined: LocalStack) -> None:
    stack = confined
    stack.put_image("net-1", "ct_scan.nii.gz", b"ct")

    stack.put_manifest("job-1", make_manifest())
    stack.drain()

    result = stack.read_result("job-1")
    assert result is not None and result["error"]["code"] == "net_mismatch"


def test_a_manifest_under_its_own_nets_prefix_runs(confined: LocalStack) -> None:
    stack = confined
    stack.put_image("net-1", "ct_scan.nii.gz", b"ct")

    stack.put_manifest("net-1/job-1", make_manifest())
    stack.drain()

    result = stack.read_result("net-1/job-1")
    assert result is not None and result["status"] == "succeeded", result
    assert result["job_id"] == "net-1/job-1"


@pytest.fixture
def confined_api(confined: LocalStack) -> Iterator[str]:
    with LocalApiServer() as server:
        yield server.url


def test_the_api_takes_a_confined_job_on_its_nets_route_only(confined_api: str, confined: LocalStack) -> None:
    api, stack = confined_api, confined
    stack.put_image("net-1", "ct_scan.nii.gz", b"ct")

    refused = requests.post(f"{api}/jobs", json=make_manifest(), timeout=30)
    assert refused.status_code == 403 and refused.json()["error"] == "net_mismatch"
    assert "/nets/{net_id}/jobs" in refused.json()["message"]

    other = requests.post(f"{api}/nets/net-2/jobs", json=make_manifest(net_id="net-1"), timeout=30)
    assert other.status_code == 403 and other.json()["error"] == "net_mismatch"

    submitted = requests.post(f"{api}/nets/net-1/jobs", json={**make_manifest(), "job_id": "job-9"}, timeout=30)
    assert submitted.status_code == 202, submitted.text
    body = submitted.json()
    assert body["job_id"] == "net-1/job-9"
    assert body["manifest"] == f"s3://{stack.bucket}/manifests/net-1/job-9.json"
    assert body["status_url"] == "/v1/nets/net-1/jobs/job-9"

    stack.drain()
    done = requests.get(f"{api}{body['status_url']}", timeout=30)
    assert done.status_code == 200 and done.json()["status"] == "succeeded"
    assert done.json()["result_location"] == f"s3://{stack.bucket}/results/net-1/job-9.json"
    assert requests.get(f"{api}/nets/net-2/jobs/job-9", timeout=30).status_code == 404, "another net's job"


def test_without_confinement_a_nets_route_still_checks_the_body(api: str, stack: LocalStack) -> None:
    response = requests.post(f"{api}/nets/net-2/jobs", json=make_manifest(net_id="net-1"), timeout=30)
    assert response.status_code == 403 and response.json()["error"] == "net_mismatch"
    accepted = requests.post(f"{api}/nets/net-1/jobs", json={**make_manifest(), "job_id": "job-3"}, timeout=30)
    assert accepted.status_code == 202 and accepted.json()["job_id"] == "job-3"


# -- a private CA bundle ----------------------------------------------------------------------------------


def test_the_ca_bundle_is_fetched_once_into_a_local_file(stack: LocalStack, monkeypatch: pytest.MonkeyPatch) -> None:
    pem = b"-----BEGIN CERTIFICATE-----\nMIIB...\n-----END CERTIFICATE-----\n"
    stack.s3().put_object(Bucket=stack.bucket, Key="config/ca-bundle.pem", Body=pem)
    monkeypatch.setenv("XNAT_CA_BUNDLE_S3_URI", f"s3://{stack.bucket}/config/ca-bundle.pem")
    settings = Settings.from_env()

    resolved = with_ca_bundle(settings, s3_client(settings))

    assert resolved.ca_bundle is not None and os.path.isfile(resolved.ca_bundle)
    with open(resolved.ca_bundle, "rb") as bundle:
        assert bundle.read() == pem
    stack.s3().delete_object(Bucket=stack.bucket, Key="config/ca-bundle.pem")
    assert with_ca_bundle(settings, s3_client(settings)).ca_bundle == resolved.ca_bundle, "once per container"
