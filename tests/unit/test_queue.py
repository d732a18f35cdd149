"""The job queue's fixed interface (message, group id, deduplication id) and the retry delay."""

from __future__ import annotations

import hashlib
import json

import pytest

from xnat_upload.exceptions import InvalidJobMessageError
from xnat_upload.job.queue import JobMessage, deduplication_id, message_group_id, redelivery_delay
from xnat_upload.manifest import JobManifest

MANIFEST = JobManifest.from_data(
    {
        "central_hub_project_id": "CHP-001",
        "accession_id": "ACC0001",
        "net_id": "net-1",
        "scan_id": "1",
        "resource_id": "NIFTI",
        "files_relative_paths_to_upload": ["a.nii"],
    }
)


def test_the_group_is_the_sha256_of_the_jobs_xnat_resource() -> None:
    assert message_group_id(MANIFEST) == hashlib.sha256(b"CHP-001|ACC0001|1|NIFTI").hexdigest()


def test_jobs_into_the_same_resource_share_a_group_whatever_their_files_or_net() -> None:
    other = MANIFEST.model_copy(update={"net_id": "net-2", "files_relative_paths_to_upload": ["b.nii"]})
    assert message_group_id(other) == message_group_id(MANIFEST)
    assert message_group_id(MANIFEST.model_copy(update={"resource_id": "DICOM"})) != message_group_id(MANIFEST)


def test_the_deduplication_id_is_the_sha256_of_job_version_and_continuation() -> None:
    assert deduplication_id("ab12", "v1", 3) == hashlib.sha256(b"ab12|v1|3").hexdigest()
    assert deduplication_id("ab12", None, 0) == hashlib.sha256(b"ab12||0").hexdigest(), "null version: empty"
    message = JobMessage(job_id="ab12", manifest_key="manifests/ab12.json", manifest_version="v1", continuation=3)
    assert message.deduplication_id == deduplication_id("ab12", "v1", 3)


def test_the_body_has_exactly_the_fixed_fields_and_round_trips() -> None:
    message = JobMessage(
        job_id="2026/ab12", manifest_key="manifests/2026/ab12.json", manifest_version=None, continuation=0
    )
    body = json.loads(message.to_body())
    assert body == {
        "job_id": "2026/ab12",
        "manifest_key": "manifests/2026/ab12.json",
        "manifest_version": None,
        "continuation": 0,
    }
    assert JobMessage.from_body(message.to_body()) == message
    assert message.next().continuation == 1 and message.next().job_id == message.job_id


@pytest.mark.parametrize(
    "body",
    [
        "not json",
        "[]",
        '{"job_id": "a", "manifest_key": "manifests/a.json", "manifest_version": null}',
        '{"job_id": "a", "manifest_key": "manifests/a.json", "manifest_version": null, "continuation": -1}',
        '{"job_id": "a", "manifest_key": "manifests/a.json", "manifest_version": null, "continuation": "1"}',
        '{"job_id": "a", "manifest_key": "manifests/a.json", "manifest_version": null, "continuation": 0, "x": 1}',
        "[" * 5000,
    ],
)
def test_anything_else_is_refused_as_an_invalid_job_message(body: str) -> None:
    with pytest.raises(InvalidJobMessageError):
        JobMessage.from_body(body)


def test_the_retry_delay_doubles_per_delivery_and_is_capped() -> None:
    no_jitter = lambda: 0.0  # noqa: E731
    delays = [redelivery_delay(n, 60, 3600, jitter=no_jitter) for n in range(1, 10)]
    assert delays == [60, 120, 240, 480, 960, 1920, 3600, 3600, 3600]
    assert redelivery_delay(1, 60, 3600, jitter=lambda: 1.0) == 66, "at most 10 % jitter"
    assert redelivery_delay(10_000, 60, 3600, jitter=no_jitter) == 3600
    assert redelivery_delay(3, 0, 3600) == 0
