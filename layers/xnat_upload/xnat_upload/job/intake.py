"""A new manifest version in S3 -> a validated job on JobQueue.fifo (or a failed result at once).

Knows S3 and the job queue, not Lambda. Nothing here touches XNAT: the intake checks what can
be checked without it (the schema, every key confined to its net's prefix, every object there),
so a bad manifest gets its failed result in seconds, even while the resource's message group
waits for an XNAT that is down, and leaves the slow work to the worker that holds the group.
The object check is bounded (a HEAD each for a few, else at most a few listing pages more than
the job needs); what it does not reach, and any object deleted later, the worker finds. When it
reached every object, what it found is handed to the worker (`JobStore.write_found`, keyed by the
manifest version): the worker does not look them up again, and starts reading them at once.

Every event may arrive twice and out of order: an older version's late event, a duplicate of a
version already run, or an event for a deleted manifest never queues work and never replaces a
result of the current version.

The job's ledger item is opened here (`queued`, or `finished` with the refusal), conditional on
the S3 event's sequencer: a version S3 took earlier never replaces the item of a later one, and a
duplicate event of the same version leaves a running job alone. A refusal is a job end: it is
announced like any other (`Upload Job Finished`).

Example::

    intake = accept_manifest("manifests/ab12.json", version_id=None, settings=settings, s3=s3, queue=queue)
    intake.status  # "queued", "refused" or "ignored"
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from ..config import Settings
from ..exceptions import IntakeFailedError, ManifestDeletedError, ManifestError, UnversionedBucketError
from ..manifest import JobManifest, decode_json
from ..manifest.models import IDENTIFIER_MAX_LENGTH
from ..observability import logger
from ..result import JobResult
from ..store import MISSING, SUBMITTED_BY_METADATA, JobStore
from .events import announce_job_end
from .ledger import JobRecord, Progress, job_error, ledger_for, now_iso
from .queue import JobMessage, message_group_id
from .queue.sender import MessageSender
from .runner import admit, found_rows

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

    from ..transfer.sources import SourceObject


SEQUENCER_WIDTH = 32


@dataclass(frozen=True)
class Intake:
    """What the intake did with one manifest version."""

    job_id: str | None
    status: Literal["queued", "refused", "ignored"]
    reason: str = ""
    manifest_version: str | None = None


def accept_manifest(
    key: str,
    *,
    version_id: str | None,
    settings: Settings,
    s3: S3Client,
    queue: MessageSender,
    submitted_by: str | None = None,
    sequencer: str = "",
) -> Intake:
    """Validate the manifest version and queue its job, or write its failed result; never raises
    for bad input (S3 being unreachable does raise: the record is retried).

    `submitted_by`: who put the manifest (the S3 event's principal), unless the manifest says who
    submitted it through the API (its `submitted-by` metadata). `sequencer`: the S3 event's, which
    orders the versions of one key."""
    job_id = settings.job_id_for(key)
    if job_id is None:
        return Intake(None, "ignored", "not a manifest key")
    store = JobStore(s3, settings)
    # The three reads go out side by side: each needs only the event (its version id, when it has one).
    pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix=f"{threading.current_thread().name}-read")
    result_version = pool.submit(store.result_version, job_id)
    manifest_read = pool.submit(store.read_manifest, key, version_id) if version_id is not None else None
    pool.shutdown(wait=False)
    current = store.manifest_version(job_id)
    if current is MISSING:
        return _deleted(store, job_id, version_id)
    assert current is None or isinstance(current, str)
    version = version_id or current  # an event without a version id (moto's) means the current one
    if version is None:  # an unversioned bucket: re-puts, late events and results cannot be told apart
        result = JobResult(job_id)
        result.fail_job(UnversionedBucketError())
        return _refused(store, result, key, JobRecord(job_id, None, submitted_by=submitted_by))
    if version_id is not None and current is not None and version_id != current:
        return Intake(job_id, "ignored", "a newer version of the manifest exists; its own event runs it", version)
    if version is not None and result_version.result() == version and _ledger_knows(settings, job_id, version):
        return Intake(job_id, "ignored", "this manifest version already has its result", version)

    opening = JobRecord(job_id, version, submitted_by=submitted_by, manifest_seq=_padded(sequencer))
    try:
        body, metadata = manifest_read.result() if manifest_read is not None else store.read_manifest(key, version)
        opening.submitted_by = metadata.get(SUBMITTED_BY_METADATA) or submitted_by
        data = decode_json(body)
    except ManifestError as exc:
        result = JobResult(job_id, manifest_version=version)
        result.fail_job(exc)
        return _refused(store, result, key, opening)
    _describe(opening, data)
    found: dict[str, SourceObject] = {}
    manifest, result = admit(data, job_id=job_id, settings=settings, s3=s3, found=found)
    result.manifest_version = version
    if manifest is None:
        return _refused(store, result, key, opening)
    # What the lookup found goes to the worker (before its message: S3 reads after writes are
    # consistent), so that the objects are looked up once and read from the worker's first moment.
    rows = found_rows(manifest, found)
    handing = threading.Thread(
        target=_hand_over, args=(store, job_id, version, rows), name=f"{threading.current_thread().name}-found"
    )
    if rows is not None:  # written while the ledger is, both before the message
        handing.start()
    try:
        return _queue(settings, queue, opening, result, manifest, key, version, handing)
    finally:
        if handing.is_alive():
            handing.join()


def _hand_over(store: JobStore, job_id: str, version: str, rows: list[list[object]]) -> None:
    """A courtesy to the worker: without it, the worker looks the objects up itself."""
    try:
        store.write_found(job_id, version, rows)
    except Exception:
        logger.warning("what the intake found was not handed to the worker", exc_info=True)


def _queue(
    settings: Settings,
    queue: MessageSender,
    opening: JobRecord,
    result: JobResult,
    manifest: JobManifest,
    key: str,
    version: str,
    handing: threading.Thread,
) -> Intake:
    """Open the job in the ledger, then send its message (once the hand-over is written)."""
    job_id = opening.job_id
    if settings.jobs_table:
        opening.state = "queued"
        for name, value in Progress.of(result).fields().items():
            setattr(opening, name, value)
        ledger = ledger_for(settings)
        if not ledger.open(opening):
            known = ledger.get(job_id)
            if known is not None and known.manifest_version != version:
                return Intake(job_id, "ignored", "the jobs ledger holds a manifest version S3 took later", version)
            # The same version again (a duplicate event): its message is sent again below, which SQS
            # drops as a duplicate; the ledger keeps where the job is.
    message = JobMessage(job_id=job_id, manifest_key=key, manifest_version=version, continuation=0)
    if handing.is_alive():
        handing.join()
    queue.send(message, message_group_id(manifest))
    logger.info("job queued", extra={"job_id": job_id, "manifest_version": version, "files": len(result.files)})
    return Intake(job_id, "queued", manifest_version=version)


def intake_crashed(
    key: str,
    *,
    version_id: str | None,
    error: BaseException,
    settings: Settings,
    s3: S3Client,
    last: bool,
    sequencer: str = "",
) -> None:
    """The intake raised on this manifest's event. On the event's last delivery (it goes to the intake's
    dead-letter queue next) the job ends here: a failed result, a ledger item and an event naming the
    failure, unless the job got further (its ledger item or a result of this version exists).
    Best effort, never raises: it runs on the handler's error path, and S3 may be what failed."""
    job_id = settings.job_id_for(key)
    if not last or job_id is None:
        return
    try:
        store = JobStore(s3, settings)
        version = version_id or current_version(key, settings=settings, s3=s3)
        if version is not None and store.result_version(job_id) == version:
            return
        if settings.jobs_table:
            known = ledger_for(settings).get(job_id)
            if known is not None and known.manifest_version == version:
                return
        result = JobResult(job_id, manifest_version=version)
        result.fail_job(
            IntakeFailedError(
                f"the intake failed on every delivery of this manifest's S3 event ({type(error).__name__}: {error}); "
                "the event is in the intake's dead-letter queue: fix the cause (see the logs), then re-put the manifest "
                "(a redrive of the event finds this result and does nothing)"
            )
        )
        _refused(store, result, key, JobRecord(job_id, version, manifest_seq=_padded(sequencer)))
    except Exception:
        logger.exception("could not record the intake's failure", extra={"job_id": job_id})


def current_version(key: str, *, settings: Settings, s3: S3Client) -> str | None:
    """The version id of the manifest now at `key` (None: unversioned bucket, deleted, or not a manifest)."""
    job_id = settings.job_id_for(key)
    version = JobStore(s3, settings).manifest_version(job_id) if job_id else None
    return version if isinstance(version, str) else None


def _refused(store: JobStore, result: JobResult, key: str, opening: JobRecord | None = None) -> Intake:
    """A refused manifest is a job that ended at once: its result, its ledger item, its event."""
    result.source = {**result.source, "manifest": key}
    store.write_result(result)
    settings = store.settings
    if opening is not None and settings.jobs_table:
        opening.state, opening.status, opening.error = "finished", result.status.value, job_error(result)
        opening.finished_at, opening.result_key = now_iso(), settings.results_key(opening.job_id)
        for name, value in Progress.of(result).fields().items():
            setattr(opening, name, value)
        if ledger_for(settings).open(opening):
            announce_job_end(opening, settings=settings)
    logger.info("manifest refused", extra={"job_id": result.job_id, "error": result.error})
    return Intake(result.job_id, "refused", (result.error or {}).get("message", ""), result.manifest_version)


def _deleted(store: JobStore, job_id: str, version_id: str | None) -> Intake:
    """Deleted before its event was handled: nothing runs. Say why, unless a result exists or the
    job has begun (its worker writes what it did when its next message comes)."""
    if store.result_version(job_id) is MISSING and store.read_checkpoint(job_id) is None:
        result = JobResult(job_id, manifest_version=version_id)
        result.fail_job(ManifestDeletedError("the manifest was deleted before its job ran; nothing was uploaded"))
        _refused(store, result, store.manifest_key(job_id), JobRecord(job_id, version_id))
    return Intake(job_id, "ignored", "the manifest no longer exists", version_id)


def _describe(record: JobRecord, data: object) -> None:
    """What the ledger says of the job from the manifest alone, valid or not, as far as it can read it:
    only values the schema could accept (a refused manifest may quote megabytes where an ID goes)."""
    if not isinstance(data, dict):
        return

    def identifier(key: str) -> str | None:
        value = data.get(key)
        return value if isinstance(value, str) and 0 < len(value) <= IDENTIFIER_MAX_LENGTH else None

    fields = {
        "project": "central_hub_project_id",
        "session": "accession_id",
        "scan": "scan_id",
        "resource": "resource_id",
    }
    record.xnat = {name: value for name, key in fields.items() if (value := identifier(key)) is not None}
    record.net_id = identifier("net_id")
    record.mode = "check" if data.get("mode") == "check" else "upload"


def _ledger_knows(settings: Settings, job_id: str, version: str) -> bool:
    """The ledger holds this version's item (or there is no ledger): a refusal was recorded whole."""
    if not settings.jobs_table:
        return True
    known = ledger_for(settings).get(job_id)
    return known is not None and known.manifest_version == version


def _padded(sequencer: str) -> str:
    """S3 sequencers compare as hex strings once padded to one length (shorter ones on the left)."""
    return sequencer.rjust(SEQUENCER_WIDTH, "0") if sequencer else ""
