"""The seed's synchronous call, `upload_data_to_xnat`, through the same queue as every other writer.

Example::

    urls = upload_data_to_xnat(
        "CHP-001", "ACC0001", "net-1", "1", "NIFTI", ["ct.nii.gz"], exist_ok=False,
        settings=Settings.from_env(), s3=s3, queue=JobQueue(sqs, settings.require_job_queue()), wait_seconds=25,
    )

The job is validated, put as `manifests/sync-<id>.json` and sent to JobQueue.fifo (so it waits
its turn behind other writers of the same XNAT resource); the call then waits for its result.
Returns the URLs (the seed's return value) or raises the one error type that describes the
outcome, with the result manifest attached as `error.result`; `JobStillRunningError` when the
job did not end within `wait_seconds` (it keeps running: follow it with its `job_id`).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from .config import Settings
from .exceptions import (
    AlreadyExistsError,
    JobStillRunningError,
    TimeBudgetExceededError,
    XnatUploadError,
    error_for_code,
)
from .job.queue.sender import MessageSender
from .submission import enqueue_job, net_job_id, validated_manifest, wait_for_result

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

SYNC_JOB_PREFIX = "sync-"


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
    queue: MessageSender,
    wait_seconds: float,
    job_id: str | None = None,
    submitted_by: str | None = None,
) -> list[str]:
    """Enqueue the upload and wait for it: the URLs in manifest order, or the error."""
    manifest = validated_manifest(
        {
            "central_hub_project_id": central_hub_project_id,
            "accession_id": accession_id,
            "net_id": net_id,
            "scan_id": scan_id,
            "resource_id": resource_id,
            "files_relative_paths_to_upload": list(files_relative_paths_to_upload),
            "exist_ok": exist_ok,
        },
        settings,
    )
    # A net's own job when jobs are confined to nets: `manifests/<net_id>/sync-<id>.json`.
    job_id = job_id or net_job_id(net_id, f"{SYNC_JOB_PREFIX}{uuid.uuid4().hex}", settings)
    version = enqueue_job(manifest, job_id=job_id, settings=settings, s3=s3, queue=queue, submitted_by=submitted_by)
    result = wait_for_result(job_id, version, settings=settings, s3=s3, seconds=wait_seconds)
    if result is None:
        raise JobStillRunningError(f"job {job_id} is queued or running; follow it at /jobs/{job_id}", job_id)
    raise_for_result(result)
    return [str(url) for url in result.get("urls", [])]


def raise_for_result(result: dict[str, Any]) -> None:
    """Nothing when every file is in XNAT as requested; else the error that says what went wrong."""
    error = _outcome_error(result)
    if error is not None:
        error.result = result
        raise error


def _outcome_error(result: dict[str, Any]) -> XnatUploadError | None:
    files = [f for f in result.get("files", []) if isinstance(f, dict)]
    if isinstance(result.get("error"), dict):
        return error_for_code(str(result["error"].get("code")), str(result["error"].get("message")))
    failed = [f for f in files if f.get("status") == "failed"]
    if failed:
        first = failed[0]
        return error_for_code(
            str(first.get("error_code") or "xnat_error"),
            f"{len(failed)} of {len(files)} files failed; {first.get('path')!r}: {first.get('error')}",
        )
    existing = [f for f in files if f.get("status") == "already_exists" and not f.get("identical")]
    if existing:
        kept_by_xnat = any(f.get("error_code") == "xnat_kept_existing_file" for f in existing)
        return AlreadyExistsError(
            f"{len(existing)} files are already in XNAT with other content and were kept: "
            f"{[f.get('path') for f in existing][:10]}"
            + ("" if kept_by_xnat else ' (exist_ok is false; to replace them, submit again with "exist_ok": true)')
        )
    pending = [f for f in files if f.get("status") == "pending"]
    if pending:
        return TimeBudgetExceededError(f"{len(pending)} files not finished")
    return None
