"""One job message -> this invocation's share of the job -> what the queue should do next.

Knows S3, XNAT (through the runner) and the job queue, not Lambda. The worker holds the job's
message group while it runs, so it is the only writer into the XNAT resource.

* **Finished**: every file's fate is settled; the result manifest is written.
* **Continued**: time ran out with files pending. The state is checkpointed and a continuation
  message (continuation + 1) is sent to the same group; the next invocation resumes from the
  checkpoint. `MAX_CONTINUATIONS`, and three invocations in a row without progress, end the job.
* **RetryLater**: XNAT is unavailable. The state is checkpointed, the progress says
  `waiting_for_xnat` and when, and the handler hides the message for a growing delay. On the
  last delivery the queue allows, the result says so and the message goes to the dead-letter queue.
* **Skipped**: a message that must not run: an older manifest version, a deleted manifest, a
  duplicate of a message already handled.

Example::

    outcome = work_on_job(message, settings=settings, s3=s3, queue=queue, remaining_seconds=remaining)
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from ..config import Settings
from ..exceptions import (
    ContinuationLimitError,
    InternalError,
    InvalidJobMessageError,
    ManifestDeletedError,
    ManifestError,
    NoProgressError,
    TimeBudgetExceededError,
    UnversionedBucketError,
    XnatUnavailableError,
    XnatUploadError,
)
from ..manifest import JobManifest
from ..observability import logger
from ..result import FileStatus, JobResult, PreviousOutcomes
from ..store import MISSING, JobStore
from ..xnat.session import XnatConnector, open_xnat
from .checkpoint import JobState
from .journal import Journal, open_journal
from .progress import ProgressReporter, snapshot
from .queue import JobMessage, message_group_id, redelivery_delay
from .queue.sender import MessageSender
from .runner import partial_result, run_job

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

MAX_STALLED_INVOCATIONS = 3


@dataclass(frozen=True)
class Finished:
    result: JobResult


@dataclass(frozen=True)
class Continued:
    result: JobResult
    next_message: JobMessage


@dataclass(frozen=True)
class RetryLater:
    result: JobResult
    delay_seconds: int
    final: bool = False  # the last delivery: the result is written, the message goes to the DLQ


@dataclass(frozen=True)
class Skipped:
    reason: str


Outcome = Finished | Continued | RetryLater | Skipped


def _now() -> datetime:
    return datetime.now(UTC)


def work_on_job(
    message: JobMessage,
    *,
    settings: Settings,
    s3: S3Client,
    queue: MessageSender,
    remaining_seconds: Callable[[], float] | None = None,
    receive_count: int = 1,
    connect: XnatConnector = open_xnat,
) -> Outcome:
    """Run this invocation's share of the job and write what the next reader needs (result,
    checkpoint, progress) before returning. Unexpected errors still write a result, then raise."""
    job_id = message.job_id
    if settings.job_id_for(message.manifest_key) != job_id:
        raise InvalidJobMessageError(f"manifest key {message.manifest_key!r} does not name job {job_id!r}")
    store = JobStore(s3, settings)
    current = store.manifest_version(job_id)
    saved = store.read_checkpoint(job_id)
    state = JobState.from_bytes(saved) if saved else None
    if current is MISSING:
        return _manifest_gone(store, job_id, message, state)
    if current is None:
        refused = JobResult(job_id)
        refused.fail_job(UnversionedBucketError())
        return _finish(store, JobState.new(job_id, None), refused)
    assert isinstance(current, str)
    if message.manifest_version is None:  # a hand-sent message (a sample event): the current version
        message = message.model_copy(update={"manifest_version": current})
    if message.manifest_version != current:
        return Skipped("a newer version of the manifest exists: this one never runs")

    dropped: JobState | None = None  # an earlier version's state: only its markers carry over
    if state is not None and state.manifest_version != message.manifest_version:
        dropped, state = state, None
    if state is not None and state.state == "done":
        return Skipped("the job already finished")
    try:
        manifest = JobManifest.from_json(
            store.load_manifest(message.manifest_key, message.manifest_version),
            max_bytes=settings.max_manifest_bytes,
            max_files=settings.max_manifest_files,
        )
    except ManifestError as exc:  # the intake checked it; a hand-sent message may still name a bad one
        result = JobResult(job_id, manifest_version=message.manifest_version)
        result.fail_job(exc)
        return _finish(store, state or JobState.new(job_id, message.manifest_version), result)
    if state is not None and message.continuation < state.continuation:
        # A redelivered older message (a crash or a lost delete after it continued the job): the job's
        # current level is in the checkpoint. Send that level's message again, in case it was never
        # sent (SQS drops it as a duplicate within five minutes if it was), and let it do the work.
        queue.send(message.model_copy(update={"continuation": state.continuation}), message_group_id(manifest))
        return Skipped(f"continuation {message.continuation} was superseded by {state.continuation}")
    state = state or JobState.new(job_id, message.manifest_version)
    state.continuation = message.continuation
    state.invocations += 1
    started = time.monotonic()
    invocation_seconds = remaining_seconds() if remaining_seconds is not None else None
    decided_before = state.decided()

    if message.continuation > settings.max_continuations:
        return _finish(store, state, _stopped(state, ContinuationLimitError(_limit_message(settings))))

    previous, journal = _previous_outcomes(store, state, dropped)
    reporter = _reporter(store, state, settings, message.continuation)
    try:
        result = run_job(
            manifest,
            job_id=job_id,
            settings=settings,
            s3=s3,
            remaining_seconds=remaining_seconds,
            previous=previous,
            connect=connect,
            on_progress=reporter.tick if reporter else None,
            state=state,
            invocation_seconds=invocation_seconds,
            journal=journal,
        )
    except Exception as exc:
        if not _superseded(store, state):
            partial = partial_result(exc) or JobResult(job_id, manifest_version=message.manifest_version)
            if partial.error is None:
                partial.fail_job(InternalError(f"unexpected {type(exc).__name__}; the job was not completed"))
            partial.manifest_version = message.manifest_version
            store.write_checkpoint(job_id, state.to_bytes())  # a redelivery resumes from here
            store.write_result(_with_totals(partial, state, store))
        raise
    code = (result.error or {}).get("code")
    pending = any(f.status is FileStatus.PENDING for f in result.files)

    if pending and code == XnatUnavailableError.error_code:
        return _wait_for_xnat(store, state, result, settings, receive_count)
    state.unavailable_since = None
    if pending and code == TimeBudgetExceededError.error_code:
        # Progress is files settled: bytes pushed into a socket prove nothing when XNAT never answers.
        state.stalled_invocations = 0 if state.decided() > decided_before else state.stalled_invocations + 1
        if state.stalled_invocations >= MAX_STALLED_INVOCATIONS:
            error = NoProgressError(
                f"{MAX_STALLED_INVOCATIONS} invocations in a row finished no file; the job stopped. "
                "Check XNAT's speed and the function timeout, then re-put the manifest"
            )
            return _finish(store, state, _stopped(state, error))
        if message.continuation >= settings.max_continuations:
            return _finish(store, state, _stopped(state, ContinuationLimitError(_limit_message(settings))))
        return _continue(store, state, result, message, manifest, queue, time.monotonic() - started)
    return _finish(store, state, result)


def _manifest_gone(store: JobStore, job_id: str, message: JobMessage, state: JobState | None) -> Skipped:
    """The manifest was deleted. If this version's job had begun, its result lists what it did;
    if it never ran, the result says so (unless a result of the job exists already)."""
    began = state is not None and state.manifest_version == message.manifest_version and state.files
    if began and state is not None and state.state != "done":
        error = ManifestDeletedError("the manifest was deleted while its job ran; the files not yet sent were not")
        store.write_result(_with_totals(_stopped(state, error), state, store))
    elif not began and store.result_version(job_id) is MISSING:
        result = JobResult(job_id, manifest_version=message.manifest_version)
        result.fail_job(ManifestDeletedError("the manifest was deleted before its job ran; nothing was uploaded"))
        store.write_result(result)
    return Skipped("the manifest no longer exists")


def _limit_message(settings: Settings) -> str:
    return (
        f"the job used {settings.max_continuations} continuations (MAX_CONTINUATIONS) and still had files "
        "pending; re-put the manifest to finish it"
    )


def _previous_outcomes(store: JobStore, state: JobState, dropped: JobState | None) -> tuple[PreviousOutcomes, Journal]:
    """What earlier runs of this job left, each marker tied to its XNAT target: the last result
    (its MD5s unless it is this version's own), the write-ahead journal (job/journal.py), an
    earlier version's dropped checkpoint. Returns them with the journal this invocation writes on."""
    job_id, version = state.job_id, state.manifest_version
    document = store.read_result(job_id)
    own = document is not None and version is not None and document.get("manifest_version") == version
    previous = PreviousOutcomes.from_document(None if own else document)
    journal, previous = open_journal(store, job_id, version, state, dropped, None if own else document, previous)
    return previous, journal


def _reporter(store: JobStore, state: JobState, settings: Settings, continuation: int) -> ProgressReporter | None:
    if settings.progress_interval_seconds <= 0:
        return None

    def publish(document: dict[str, Any]) -> None:
        if not _superseded(store, state):  # never over a newer version's progress
            store.write_progress(state.job_id, document)

    return ProgressReporter(publish, settings.progress_interval_seconds, continuation=continuation)


def _stopped(state: JobState, error: XnatUploadError) -> JobResult:
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


def _with_totals(result: JobResult, state: JobState, store: JobStore) -> JobResult:
    """Job-wide figures over every invocation, not just the last one, and where the job came from."""
    result.source = {**result.source, "manifest": store.manifest_key(state.job_id)}
    result.started_at = state.started_at or result.started_at
    result.xnat_requests, result.xnat_retries = state.xnat_requests, state.xnat_retries
    result.invocations = state.invocations
    if result.started_at:
        elapsed = _now() - datetime.fromisoformat(result.started_at)
        result.duration_seconds = round(elapsed.total_seconds(), 3)
    return result


def _finish(store: JobStore, state: JobState, result: JobResult) -> Finished | Skipped:
    result.manifest_version = state.manifest_version
    result.finished_at = _now().isoformat(timespec="seconds")
    if _superseded(store, state):
        # A newer version was put while this one ran: its own job (next in this group) answers.
        logger.info(
            "a newer manifest version exists: this version's result is not written", extra={"job_id": state.job_id}
        )
        return Skipped("a newer version of the manifest was put while this one ran")
    store.write_result(_with_totals(result, state, store))
    store.write_progress(state.job_id, snapshot(result, "finished", continuation=state.continuation))
    # A small marker, not the files: duplicates of this job's messages are recognised and skipped.
    done = JobState(state.job_id, state.manifest_version, state.continuation, "done", invocations=state.invocations)
    store.write_checkpoint(state.job_id, done.to_bytes())
    logger.info(
        "job finished", extra={"job_id": state.job_id, "status": result.status.value, "counts": result.counts()}
    )
    return Finished(result)


def _superseded(store: JobStore, state: JobState) -> bool:
    current = store.manifest_version(state.job_id)
    return (
        state.manifest_version is not None and current is not MISSING and current not in (None, state.manifest_version)
    )


def _continue(
    store: JobStore,
    state: JobState,
    result: JobResult,
    message: JobMessage,
    manifest: JobManifest,
    queue: MessageSender,
    seconds: float,
) -> Continued | Skipped:
    """Hand the rest to the next invocation: checkpoint first (at the next level, so that this
    message, redelivered, knows it was continued), then the message (the group is ours until this
    invocation ends, so the continuation cannot start early)."""
    if _superseded(store, state):
        return Skipped("a newer version of the manifest was put while this one ran")
    following = message.next()
    state.state = "running"
    state.continuation = following.continuation
    store.write_checkpoint(state.job_id, state.to_bytes())
    queue.send(following, message_group_id(manifest))
    store.write_progress(state.job_id, snapshot(result, "running", continuation=following.continuation))
    logger.info(
        "job continues in a new invocation",
        extra={
            "job_id": state.job_id,
            "continuation": following.continuation,
            "decided": state.decided(),
            "files": len(state.files),
            "seconds": round(seconds, 3),
        },
    )
    return Continued(result, following)


def _wait_for_xnat(
    store: JobStore, state: JobState, result: JobResult, settings: Settings, receive_count: int
) -> RetryLater | Skipped:
    """XNAT is down: keep what was done, and try again after a growing delay; give up (DLQ) when
    the queue would not deliver the message again."""
    if _superseded(store, state):
        return Skipped("a newer version of the manifest was put while this one ran")
    now = _now()
    state.state = "waiting_for_xnat"
    state.unavailable_since = state.unavailable_since or now.isoformat(timespec="seconds")
    store.write_checkpoint(state.job_id, state.to_bytes())
    if receive_count >= settings.job_max_receive_count:
        message = (
            f"XNAT was unavailable on {receive_count} deliveries since {state.unavailable_since} "
            f"({(result.error or {}).get('message', '')}); the job message goes to the dead-letter queue. "
            "Redrive it (or re-put the manifest) once XNAT answers: the job resumes where it stopped"
        )
        final = _stopped(state, XnatUnavailableError(message))
        # The checkpoint keeps the files pending: a redriven message picks them up again.
        store.write_result(_with_totals(final, state, store))
        store.write_progress(state.job_id, snapshot(final, "finished", continuation=state.continuation))
        logger.error("XNAT unavailable: job moved to the dead-letter queue", extra={"job_id": state.job_id})
        return RetryLater(final, 0, final=True)
    delay = redelivery_delay(
        receive_count, settings.xnat_unavailable_retry_seconds, settings.xnat_unavailable_max_retry_seconds
    )
    retry_at = (now + timedelta(seconds=delay)).isoformat(timespec="seconds")
    store.write_progress(
        state.job_id,
        snapshot(
            result,
            "waiting_for_xnat",
            continuation=state.continuation,
            retry_at=retry_at,
            attempt=receive_count,
            max_attempts=settings.job_max_receive_count,
            reason=(result.error or {}).get("message"),
        ),
    )
    logger.warning("XNAT unavailable: job waits", extra={"job_id": state.job_id, "retry_at": retry_at})
    return RetryLater(result, delay)
