"""A new manifest version in S3 -> a validated job on JobQueue.fifo (or a failed result at once).

Knows S3 and the job queue, not Lambda. Nothing here touches XNAT: the intake checks what can
be checked without it (the schema, every key confined to its net's prefix, every object there),
so a bad manifest gets its failed result in seconds, even while the resource's message group
waits for an XNAT that is down, and leaves the slow work to the worker that holds the group.
The object check is bounded (a HEAD each for a few, else at most a few listing pages more than
the job needs); what it does not reach, and any object deleted later, the worker finds.

Every event may arrive twice and out of order: an older version's late event, a duplicate of a
version already run, or an event for a deleted manifest never queues work and never replaces a
result of the current version.

Example::

    intake = accept_manifest("manifests/ab12.json", version_id=None, settings=settings, s3=s3, queue=queue)
    intake.status  # "queued", "refused" or "ignored"
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from ..config import Settings
from ..exceptions import ManifestDeletedError, ManifestError, UnversionedBucketError
from ..manifest import decode_json
from ..observability import logger
from ..result import JobResult
from ..store import MISSING, JobStore
from .progress import snapshot
from .queue import JobMessage, message_group_id
from .queue.sender import MessageSender
from .runner import admit

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client


@dataclass(frozen=True)
class Intake:
    """What the intake did with one manifest version."""

    job_id: str | None
    status: Literal["queued", "refused", "ignored"]
    reason: str = ""
    manifest_version: str | None = None


def accept_manifest(
    key: str, *, version_id: str | None, settings: Settings, s3: S3Client, queue: MessageSender
) -> Intake:
    """Validate the manifest version and queue its job, or write its failed result; never raises
    for bad input (S3 being unreachable does raise: the record is retried)."""
    job_id = settings.job_id_for(key)
    if job_id is None:
        return Intake(None, "ignored", "not a manifest key")
    store = JobStore(s3, settings)
    current = store.manifest_version(job_id)
    if current is MISSING:
        return _deleted(store, job_id, version_id)
    assert current is None or isinstance(current, str)
    version = version_id or current  # an event without a version id (moto's) means the current one
    if version is None:  # an unversioned bucket: re-puts, late events and results cannot be told apart
        result = JobResult(job_id)
        result.fail_job(UnversionedBucketError())
        return _refused(store, result, key)
    if version_id is not None and current is not None and version_id != current:
        return Intake(job_id, "ignored", "a newer version of the manifest exists; its own event runs it", version)
    if version is not None and store.result_version(job_id) == version:
        return Intake(job_id, "ignored", "this manifest version already has its result", version)

    try:
        data = decode_json(store.load_manifest(key, version))
    except ManifestError as exc:
        result = JobResult(job_id, manifest_version=version)
        result.fail_job(exc)
        return _refused(store, result, key)
    manifest, result = admit(data, job_id=job_id, settings=settings, s3=s3)
    result.manifest_version = version
    if manifest is None:
        return _refused(store, result, key)

    progress = store.read_progress(job_id)
    if not (progress and progress.get("manifest_version") == version and version is not None):
        # A duplicate event must not turn a running job's progress back into "queued".
        store.write_progress(job_id, snapshot(result, "queued"))
    message = JobMessage(job_id=job_id, manifest_key=key, manifest_version=version, continuation=0)
    queue.send(message, message_group_id(manifest))
    logger.info("job queued", extra={"job_id": job_id, "manifest_version": version, "files": len(result.files)})
    return Intake(job_id, "queued", manifest_version=version)


def current_version(key: str, *, settings: Settings, s3: S3Client) -> str | None:
    """The version id of the manifest now at `key` (None: unversioned bucket, deleted, or not a manifest)."""
    job_id = settings.job_id_for(key)
    version = JobStore(s3, settings).manifest_version(job_id) if job_id else None
    return version if isinstance(version, str) else None


def _refused(store: JobStore, result: JobResult, key: str) -> Intake:
    result.source = {**result.source, "manifest": key}
    store.write_result(result)
    logger.info("manifest refused", extra={"job_id": result.job_id, "error": result.error})
    return Intake(result.job_id, "refused", (result.error or {}).get("message", ""), result.manifest_version)


def _deleted(store: JobStore, job_id: str, version_id: str | None) -> Intake:
    """Deleted before its event was handled: nothing runs. Say why, unless a result exists or the
    job has begun (its worker writes what it did when its next message comes)."""
    if store.result_version(job_id) is MISSING and store.read_checkpoint(job_id) is None:
        result = JobResult(job_id, manifest_version=version_id)
        result.fail_job(ManifestDeletedError("the manifest was deleted before its job ran; nothing was uploaded"))
        store.write_result(result)
    return Intake(job_id, "ignored", "the manifest no longer exists", version_id)
