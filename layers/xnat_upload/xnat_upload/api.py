"""The seed's synchronous call, `upload_data_to_xnat`, on the same core as the S3 trigger.

Example::

    urls = upload_data_to_xnat(
        "CHP-001", "ACC0001", "net-1", "1", "NIFTI", ["ct.nii.gz"], exist_ok=False,
        settings=Settings.from_env(), s3=boto3.client("s3"),
    )

Returns the URLs (the seed's return value) or raises the one error type that describes the
outcome, with the full result manifest attached as `error.result`.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from .config import Settings
from .exceptions import (
    AlreadyExistsError,
    TimeBudgetExceededError,
    XnatUploadError,
    error_for_code,
)
from .job import partial_result, run_job
from .manifest import JobManifest
from .observability import record_job_metrics
from .result import FileStatus, JobResult
from .store import JobStore

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

SYNC_JOB_PREFIX = "sync/"


def upload_data_to_xnat(
    central_hub_project_id: str,
    accession_id: str,
    net_id: str,
    scan_id: str,
    resource_id: str,
    files_relative_paths_to_upload: Sequence[str],
    exist_ok: bool = False,
    *,
    settings: Settings,
    s3: S3Client,
    job_id: str | None = None,
    remaining_seconds: Callable[[], float] | None = None,
) -> list[str]:
    """Upload now and return the XNAT URLs in manifest order, or raise; a result is written either way."""
    manifest = JobManifest.from_data(
        {
            "central_hub_project_id": central_hub_project_id,
            "accession_id": accession_id,
            "net_id": net_id,
            "scan_id": scan_id,
            "resource_id": resource_id,
            "files_relative_paths_to_upload": list(files_relative_paths_to_upload),
            "exist_ok": exist_ok,
        },
        max_files=settings.max_manifest_files,
    )
    job_id = job_id or f"{SYNC_JOB_PREFIX}{uuid.uuid4().hex}"
    store = JobStore(s3, settings)
    try:
        result = run_job(manifest, job_id=job_id, settings=settings, s3=s3, remaining_seconds=remaining_seconds)
    except Exception as exc:
        partial = partial_result(exc)
        if partial is not None:
            store.write_result(partial)
        raise
    store.write_result(result)
    record_job_metrics(result)
    raise_for_result(result)
    return result.urls


def raise_for_result(result: JobResult) -> None:
    """Nothing when every file is in XNAT as requested; else the error that says what went wrong."""
    error = _outcome_error(result)
    if error is not None:
        error.result = result.to_dict()
        raise error


def _outcome_error(result: JobResult) -> XnatUploadError | None:
    if result.error is not None:
        return error_for_code(result.error["code"], result.error["message"])
    failed = [f for f in result.files if f.status is FileStatus.FAILED]
    if failed:
        first = failed[0]
        return error_for_code(
            first.error_code or "xnat_error",
            f"{len(failed)} of {len(result.files)} files failed; {first.path!r}: {first.error}",
        )
    existing = [f for f in result.files if f.status is FileStatus.ALREADY_EXISTS and not f.in_place]
    if existing:
        return AlreadyExistsError(
            f"{len(existing)} files are already in XNAT with other content and were kept: {[f.path for f in existing][:10]}"
            + ("" if any(f.error_code == "xnat_kept_existing_file" for f in existing) else " (exist_ok is false)")
        )
    pending = [f for f in result.files if f.status is FileStatus.PENDING]
    if pending:
        return TimeBudgetExceededError(f"{len(pending)} files not started in time")
    return None
