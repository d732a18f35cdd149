"""Asynchronous jobs: submit a manifest (idempotent on its job ID) and read a job's status.

Example::

    submission = submit_job(manifest, job_id="ab12", settings=settings, s3=s3)
    state, result = job_status("ab12", settings=settings, s3=s3)  # ("pending", None) until the trigger ran
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from .config import Settings
from .exceptions import JobConflictError, JobNotFoundError, ManifestError
from .manifest import JobManifest, confined_keys
from .store import JobStore

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

JOB_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._~-]{0,127}$"
_JOB_ID = re.compile(JOB_ID_PATTERN)

JobState = Literal["done", "pending"]


@dataclass(frozen=True)
class Submission:
    job_id: str
    manifest_key: str
    created: bool  # False when the same manifest was already submitted under this ID
    resumed: bool = False  # True when it had ended partial or failed and was put again to finish


def check_job_id(job_id: str) -> str:
    if not _JOB_ID.match(job_id) or job_id.endswith(".json"):
        raise ManifestError(f"job_id {job_id!r} must match {JOB_ID_PATTERN} (and not end in .json)")
    return job_id


def submit_job(
    manifest_data: dict[str, Any], *, settings: Settings, s3: S3Client, job_id: str | None = None
) -> Submission:
    """Validate fully (the trigger would refuse it anyway), then put `manifests/<job_id>.json` once."""
    manifest = JobManifest.from_data(manifest_data, max_files=settings.max_manifest_files)
    _, refused = confined_keys(settings.upload_prefix(manifest.net_id), manifest.files_relative_paths_to_upload)
    if refused:
        raise next(iter(refused.values()))
    job_id = check_job_id(job_id) if job_id else uuid.uuid4().hex
    store = JobStore(s3, settings)
    document = manifest.model_dump(exclude_none=True)
    key = settings.manifest_key(job_id)
    if store.put_manifest_once(job_id, document):
        return Submission(job_id, key, created=True)
    existing = store.load_manifest(key)
    try:
        same = JobManifest.from_json(existing, max_bytes=settings.max_manifest_bytes) == manifest
    except ManifestError:
        same = False
    if not same:
        raise JobConflictError(f"job {job_id!r} was already submitted with a different manifest")
    previous = store.read_result(job_id)
    if previous is not None and previous.get("status") != "succeeded":
        # Submitting a finished, unfinished job again resumes it: a new manifest version is a new
        # run, which skips what XNAT already holds (the S3 counterpart: re-put the manifest).
        store.put_manifest(job_id, document)
        return Submission(job_id, key, created=True, resumed=True)
    return Submission(job_id, key, created=False)


def job_status(job_id: str, *, settings: Settings, s3: S3Client) -> tuple[JobState, dict[str, Any] | None]:
    """`done` with the result manifest; `pending` (with the progress object, once running) while
    only the manifest exists; else JobNotFoundError."""
    check_job_id(job_id)
    store = JobStore(s3, settings)
    result = store.read_result(job_id)
    if result is not None:
        return "done", result
    if store.manifest_exists(job_id):
        return "pending", store.read_progress(job_id)
    raise JobNotFoundError(f"no job {job_id!r}")


__all__ = ["JOB_ID_PATTERN", "Submission", "check_job_id", "job_status", "submit_job"]
