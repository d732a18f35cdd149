"""How a job ends, whoever ends it (the worker, the sweeper): result, then ledger, then event.

The order is what makes a kill at any instruction harmless:

1. the result manifest (S3): the full per-file record, written first, so that a ledger item that
   says `finished` always has its result; killed before the ledger write, the job is still open
   and its redelivered message (or the sweeper) ends it again;
2. the ledger's end, a conditional write: exactly one writer wins it, and only that one goes on;
3. the `Upload Job Finished` event; killed before it, the item keeps `event_sent: false` and the
   sweeper puts it. What the caller writes once the job has ended (`alongside`: the worker's `done`
   checkpoint) goes out at the same time as the event: neither waits for the other, and each one's
   loss is covered on its own (the sweeper resends the event; a job ended in the ledger is never run
   again).

Example::

    record = end_job(store, result, settings=settings, continuation=2)
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from ..exceptions import ManifestError, XnatUploadError
from ..manifest import decode_json, requested_paths
from ..result import FileResult, FileStatus, JobResult
from .checkpoint import JobState
from .events import announce_job_end
from .ledger import Progress, job_error, ledger_for, now_iso

if TYPE_CHECKING:
    from ..config import Settings
    from ..store import JobStore
    from .ledger import JobRecord


def stopped_result(state: JobState, error: XnatUploadError) -> JobResult:
    """The result of a job ended on purpose with files still pending: they are `skipped`."""
    result = JobResult(state.job_id, manifest_version=state.manifest_version, files=state.files)
    result.xnat, result.source, result.upload_mode = state.xnat, state.source, state.upload_mode
    result.error = None
    for file in result.files:
        if file.status is FileStatus.PENDING:
            file.status, file.url = FileStatus.SKIPPED, None
            file.error = f"not sent: {error.message}"
    result.fail_job(error)
    return result


def with_totals(result: JobResult, state: JobState, store: JobStore) -> JobResult:
    """Job-wide figures over every invocation, not just the last one, and where the job came from."""
    result.source = {**result.source, "manifest": store.manifest_key(state.job_id)}
    result.started_at = state.started_at or result.started_at
    result.xnat_requests, result.xnat_retries = state.xnat_requests, state.xnat_retries
    result.invocations = state.invocations
    if result.started_at:
        elapsed = datetime.now(UTC) - datetime.fromisoformat(result.started_at)
        result.duration_seconds = round(elapsed.total_seconds(), 3)
    return result


def abandoned_result(store: JobStore, job_id: str, version: str | None, error: XnatUploadError) -> JobResult:
    """The result of a job that stopped abnormally (crashed or killed every time): what its checkpoint
    says was done, the rest `skipped` with `error`; every requested file `skipped` when it never got
    as far as a checkpoint."""
    saved = store.read_checkpoint(job_id)
    state = JobState.from_bytes(saved) if saved else None
    if state is None or state.manifest_version != version or state.state == "done":
        state = JobState.new(job_id, version)
    if not state.files:
        state.files = _requested_files(store, job_id, version)
    return with_totals(stopped_result(state, error), state, store)


def _requested_files(store: JobStore, job_id: str, version: str | None) -> list[FileResult]:
    try:
        data = decode_json(store.load_manifest(store.manifest_key(job_id), version))
    except ManifestError:  # deleted, or unreadable: the result says so through its error alone
        return []
    return [FileResult(path) for path in requested_paths(data, store.settings.max_manifest_files)]


def end_fields(result: JobResult, settings: Settings) -> dict[str, object]:
    """What the ledger keeps of a finished job's result."""
    return {
        "status": result.status.value,
        "error": job_error(result),
        "result_key": settings.results_key(result.job_id or "unknown"),
        "finished_at": now_iso(),
        # what GET /jobs/{id} says of a finished job without reading its result
        "started_at": result.started_at,
        "invocations": result.invocations,
        "upload_mode": result.upload_mode,
        **Progress.of(result).fields(),
    }


def end_job(
    store: JobStore,
    result: JobResult,
    *,
    settings: Settings,
    continuation: int,
    given_up: bool = False,
    alongside: Callable[[], object] | None = None,
) -> JobRecord | None:
    """Write the result, end the job in the ledger, announce it. The ledger item as written when this
    writer ended the job; None when the ledger had moved on (a newer version, or it had ended).
    `alongside` runs after the ledger's end (or after the result, without a ledger), while the event
    is put; its exception is raised after the announcement ended."""
    store.write_result(result)
    record = None
    if settings.jobs_table:
        record = ledger_for(settings).finish(
            result.job_id or "unknown",
            result.manifest_version,
            continuation,
            given_up=given_up,
            **end_fields(result, settings),
        )
    if record is None:
        if alongside is not None:
            alongside()
        return record
    if alongside is None:
        announce_job_end(record, settings=settings)
        return record
    ended = record
    announcing = threading.Thread(
        target=lambda: announce_job_end(ended, settings=settings), name=f"{threading.current_thread().name}-announce"
    )
    announcing.start()
    try:
        alongside()
    finally:
        announcing.join()  # never raises: a failed put is the sweeper's
    return record
