"""One job message -> this invocation's share of the job -> what the queue should do next.

Knows S3, XNAT (through the runner) and the job queue, not Lambda. The worker holds the job's
message group while it runs, so it is the only writer into the XNAT resource.

* **Finished**: every file's fate is settled; the result manifest is written.
* **Continued**: time ran out with files pending. The state is checkpointed and a continuation
  message (continuation + 1) is sent to the same group; the next invocation resumes from the
  checkpoint. `MAX_CONTINUATIONS`, and three invocations in a row without progress, end the job.
* **RetryLater**: XNAT is unavailable. The state is checkpointed, the ledger says
  `waiting_for_xnat` and when, and the handler hides the message for a growing delay. On the
  last delivery the queue allows, the result says so and the message goes to the dead-letter queue.
* **Skipped**: a message that must not run: an older manifest version, a deleted manifest, a
  duplicate of a message already handled.

Where the job is lives in the jobs ledger (`job/ledger`): each delivery marks it `running` (with
when its message comes back if this invocation is killed), progress ticks update its counts, and
the end goes through `ending.end_job` (result, ledger, event). Every ledger write is conditional on
the manifest version and the continuation: a stale message's writes fail, and it stops.

An unexpected exception is the handler's to report (`crashed`): on the last delivery the queue
allows, it ends the job with a result that names the crash; before that the checkpoint keeps what
was done and the message comes back after a short delay.

Example::

    outcome = work_on_job(message, settings=settings, s3=s3, queue=queue, remaining_seconds=remaining)
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from ..config import Settings
from ..exceptions import (
    ContinuationLimitError,
    InvalidJobMessageError,
    ManifestDeletedError,
    ManifestError,
    NoProgressError,
    TimeBudgetExceededError,
    UnversionedBucketError,
    WorkerCrashedError,
    XnatUnavailableError,
)
from ..manifest import JobManifest
from ..observability import logger
from ..result import FileStatus, JobResult, PreviousOutcomes
from ..store import MISSING, JobStore
from ..transfer.s3_deadline import s3_deadline
from ..xnat.session import XnatConnector, open_xnat
from .checkpoint import JobState
from .ending import abandoned_result, end_job, stopped_result, with_totals
from .journal import Journal, open_journal
from .ledger import JobRecord, Progress, StaleWriteError, error_entry, job_error, ledger_for
from .progress import ProgressReporter
from .queue import JobMessage, message_group_id, redelivery_delay
from .queue.sender import MessageSender
from .runner import handed_over, partial_result, run_job, zip_prefetch

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
    lease_seconds: float | None = None,
) -> Outcome:
    """Run this invocation's share of the job and write what the next reader needs (result,
    checkpoint, ledger) before returning. An unexpected error keeps the checkpoint, then raises
    (`crashed` decides what the queue does with the message).

    `lease_seconds`: how long until the message comes back if this invocation dies without a word
    (the handler set its visibility so); the ledger keeps it, so the sweeper can tell a job whose
    last delivery died from one that still runs."""
    job_id = message.job_id
    if settings.job_id_for(message.manifest_key) != job_id:
        raise InvalidJobMessageError(f"manifest key {message.manifest_key!r} does not name job {job_id!r}")
    store = JobStore(s3, settings)
    reads = _StartReads(store, message)
    with ExitStack() as reading:  # reads ahead end with the invocation, whatever its outcome
        return _work(message, store, reads, reading, settings=settings, s3=s3, queue=queue,
                     remaining_seconds=remaining_seconds, receive_count=receive_count, connect=connect,
                     lease_seconds=lease_seconds)  # fmt: skip


def _work(
    message: JobMessage,
    store: JobStore,
    reads: _StartReads,
    reading: ExitStack,
    *,
    settings: Settings,
    s3: S3Client,
    queue: MessageSender,
    remaining_seconds: Callable[[], float] | None,
    receive_count: int,
    connect: XnatConnector,
    lease_seconds: float | None,
) -> Outcome:
    job_id = message.job_id
    current = reads.current.result()
    saved = reads.checkpoint.result()
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
    # The ledger hears of this delivery first, before anything that could exhaust the invocation (a 16 MiB
    # manifest, a 100,000-file checkpoint): a worker killed later still leaves its attempt and lease.
    current_level = state is None or message.continuation >= state.continuation
    if current_level and not _mark_running(settings, message, receive_count, lease_seconds):
        return Skipped("the jobs ledger holds a later continuation or the job's end")
    try:
        manifest = JobManifest.from_json(
            reads.manifest(message.manifest_key, message.manifest_version),
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
    # A fresh job whose objects the intake found: they are read from now on, while the ledger is
    # written and XNAT logged into (reads only: a stale message reads and drops them).
    found = handed_over(reads.found.result(), message.manifest_version) if state is None else None
    ahead = None
    if found:
        # Under the invocation's S3 deadline, the one run_job sets (its reads end when XNAT calls do).
        margin = settings.time_budget_margin_seconds / 2
        reading.enter_context(s3_deadline(remaining_seconds() - margin if remaining_seconds else None))
        ahead = reading.enter_context(zip_prefetch(list(found.values()), settings, s3))
    state = state or JobState.new(job_id, message.manifest_version)
    state.continuation = message.continuation
    state.invocations += 1
    started = time.monotonic()
    invocation_seconds = remaining_seconds() if remaining_seconds is not None else None
    decided_before = state.decided()

    if message.continuation > settings.max_continuations:
        return _finish(store, state, stopped_result(state, ContinuationLimitError(_limit_message(settings))))

    previous, journal = _previous_outcomes(store, state, dropped, reads)
    reporter = _reporter(state, settings)
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
            found=found,
            prefetch=ahead,
        )
    except Exception as exc:
        if not _superseded(store, state):
            partial = partial_result(exc)
            if partial is not None:
                state.absorb(partial)
            store.write_checkpoint(job_id, state.to_bytes())  # a redelivery resumes from here
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
            return _finish(store, state, stopped_result(state, error))
        if message.continuation >= settings.max_continuations:
            return _finish(store, state, stopped_result(state, ContinuationLimitError(_limit_message(settings))))
        return _continue(store, state, result, message, manifest, queue, time.monotonic() - started)
    return _finish(store, state, result)


def _manifest_gone(store: JobStore, job_id: str, message: JobMessage, state: JobState | None) -> Skipped:
    """The manifest was deleted. If this version's job had begun, its result lists what it did;
    if it never ran, the result says so (unless a result of the job exists already)."""
    began = state is not None and state.manifest_version == message.manifest_version and state.files
    if began and state is not None and state.state != "done":
        error = ManifestDeletedError("the manifest was deleted while its job ran; the files not yet sent were not")
        end_job(store, with_totals(stopped_result(state, error), state, store), settings=store.settings,
                continuation=message.continuation)  # fmt: skip
    elif not began and store.result_version(job_id) != message.manifest_version:
        result = JobResult(job_id, manifest_version=message.manifest_version)
        result.fail_job(ManifestDeletedError("the manifest was deleted before its job ran; nothing was uploaded"))
        end_job(store, result, settings=store.settings, continuation=message.continuation)
    return Skipped("the manifest no longer exists")


def _limit_message(settings: Settings) -> str:
    return (
        f"the job used {settings.max_continuations} continuations (MAX_CONTINUATIONS) and still had files "
        "pending; re-put the manifest to finish it"
    )


class _StartReads:
    """The reads every invocation starts with, sent side by side as it begins (each is a round trip
    to S3 that needs nothing from the others): the manifest's current version, the checkpoint, the
    message's manifest version, the last result, the journal's segment names, what the intake found. Each is used where
    the sequential code used it; nothing is written before the ledger says this delivery runs."""

    def __init__(self, store: JobStore, message: JobMessage) -> None:
        job_id = message.job_id
        # Named after the invocation's thread: a log line or a profile tells whose reads they are.
        pool = ThreadPoolExecutor(max_workers=6, thread_name_prefix=f"{threading.current_thread().name}-start-read")
        try:
            self.found: Future[dict[str, Any] | None] = pool.submit(store.read_found, job_id)
            self.current: Future[Any] = pool.submit(store.manifest_version, job_id)
            self.checkpoint: Future[bytes | None] = pool.submit(store.read_checkpoint, job_id)
            self.result: Future[dict[str, Any] | None] = pool.submit(store.read_result, job_id)
            self.journal_names: Future[list[str]] = pool.submit(store.journal_names, job_id)
            self._manifest_at = (message.manifest_key, message.manifest_version)
            self._manifest = (
                pool.submit(store.load_manifest, *self._manifest_at) if message.manifest_version is not None else None
            )
        finally:
            pool.shutdown(wait=False)
        self._store = store

    def manifest(self, key: str, version: str | None) -> bytes:
        if self._manifest is not None and (key, version) == self._manifest_at:
            return self._manifest.result()
        return self._store.load_manifest(key, version)


def _previous_outcomes(
    store: JobStore, state: JobState, dropped: JobState | None, reads: _StartReads
) -> tuple[PreviousOutcomes, Journal]:
    """What earlier runs of this job left, each marker tied to its XNAT target: the last result
    (its MD5s unless it is this version's own), the write-ahead journal (job/journal.py), an
    earlier version's dropped checkpoint. Returns them with the journal this invocation writes on."""
    job_id, version = state.job_id, state.manifest_version
    document = reads.result.result()
    own = document is not None and version is not None and document.get("manifest_version") == version
    previous = PreviousOutcomes.from_document(None if own else document)
    journal, previous = open_journal(store, job_id, version, state, dropped, None if own else document, previous,
                                     listed=reads.journal_names.result())  # fmt: skip
    return previous, journal


def _mark_running(settings: Settings, message: JobMessage, attempt: int, lease_seconds: float | None) -> bool:
    """This delivery starts: the ledger says so, with when the message comes back if it dies. False
    when the ledger's condition refuses the write (a later continuation holds the item, or the job
    ended): this message is stale.

    The caller checked that the message's version is the manifest's current one (S3 says so). An
    item of another version is then behind, not ahead: this version's intake has not opened it yet
    (the API's upload route sends the message itself). The worker opens it, conditional on the item
    still being the one it read."""
    if not settings.jobs_table:
        return True
    ledger = ledger_for(settings)
    lease = lease_seconds if lease_seconds is not None else settings.job_queue_visibility_seconds
    running = {"state": "running", "attempt": attempt, "lease_until": _iso_in(lease)}
    try:
        ledger.update(message.job_id, message.manifest_version, message.continuation, **running)
    except StaleWriteError:
        known = ledger.get(message.job_id)
        if known is None or known.manifest_version == (message.manifest_version or ""):
            return False
        opening = JobRecord(message.job_id, message.manifest_version, manifest_seq=known.manifest_seq)
        if not ledger.open(opening):
            return False
        try:
            ledger.update(message.job_id, message.manifest_version, message.continuation, **running)
        except StaleWriteError:
            return False
    return True


def _ledger_update(settings: Settings, job: JobState, **changes: Any) -> bool:
    """Move the job in the ledger (conditional on its version and continuation); False when stale."""
    if not settings.jobs_table:
        return True
    try:
        ledger_for(settings).update(job.job_id, job.manifest_version, job.continuation, **changes)
    except StaleWriteError:
        logger.info("the ledger holds a newer version or continuation: not moved", extra={"job_id": job.job_id})
        return False
    return True


def _reporter(state: JobState, settings: Settings) -> ProgressReporter | None:
    """Counts into the ledger, at most every PROGRESS_INTERVAL_SECONDS (a progress tick never fails the job)."""
    if settings.progress_interval_seconds <= 0 or not settings.jobs_table:
        return None

    def publish(result: JobResult) -> None:
        _ledger_update(settings, state, state="running", **Progress.of(result).fields())

    return ProgressReporter(publish, settings.progress_interval_seconds)


def _finish(store: JobStore, state: JobState, result: JobResult) -> Finished | Skipped:
    result.manifest_version = state.manifest_version
    result.finished_at = _now().isoformat(timespec="seconds")
    if _superseded(store, state):
        # A newer version was put while this one ran: its own job (next in this group) answers.
        logger.info(
            "a newer manifest version exists: this version's result is not written", extra={"job_id": state.job_id}
        )
        return Skipped("a newer version of the manifest was put while this one ran")
    # A small marker, not the files: duplicates of this job's messages are recognised and skipped. After
    # the ledger's end (a job marked done is never run again), while the event is put.
    done = JobState(state.job_id, state.manifest_version, state.continuation, "done", invocations=state.invocations)
    end_job(store, with_totals(result, state, store), settings=store.settings, continuation=state.continuation,
            alongside=lambda: store.write_checkpoint(state.job_id, done.to_bytes()))  # fmt: skip
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
    # The ledger at the next level before the message: this level's late writes can no longer move it. The next
    # level's delivery has not started: no attempt, no lease (the sweeper judges only delivered messages).
    _ledger_update(store.settings, state, state="running", attempt=None, lease_until=None,
                   **Progress.of(result).fields())  # fmt: skip
    queue.send(following, message_group_id(manifest))
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
        final = stopped_result(state, XnatUnavailableError(message))
        # The checkpoint keeps the files pending: a redriven message picks them up again.
        end_job(store, with_totals(final, state, store), settings=settings, continuation=state.continuation,
                given_up=True)  # fmt: skip
        logger.error("XNAT unavailable: job moved to the dead-letter queue", extra={"job_id": state.job_id})
        return RetryLater(final, 0, final=True)
    delay = redelivery_delay(
        receive_count, settings.xnat_unavailable_retry_seconds, settings.xnat_unavailable_max_retry_seconds
    )
    retry_at = (now + timedelta(seconds=delay)).isoformat(timespec="seconds")
    _ledger_update(
        settings,
        state,
        state="waiting_for_xnat",
        retry_at=retry_at,
        attempt=receive_count,
        lease_until=_iso_in(delay),
        error=job_error(result),
        **Progress.of(result).fields(),
    )
    logger.warning("XNAT unavailable: job waits", extra={"job_id": state.job_id, "retry_at": retry_at})
    return RetryLater(result, delay)


def crashed(
    message: JobMessage, error: BaseException, *, settings: Settings, s3: S3Client, receive_count: int
) -> float | None:
    """An unexpected exception escaped `work_on_job` (a bug, a permission missing): what to do with
    the message. Before the last delivery: the delay after which it comes back (short, growing), the
    ledger noting the crash. On the last: None; the job ends here, its result naming the crash and
    keeping what the checkpoint says was done, and the message goes on to the dead-letter queue
    (a redrive resumes from the checkpoint). Never raises: it runs on the handler's error path."""
    summary = f"{type(error).__name__}: {error}"
    try:
        store = JobStore(s3, settings)
        job = JobState.new(message.job_id, message.manifest_version)
        job.continuation = message.continuation
        if receive_count < settings.job_max_receive_count:
            delay = redelivery_delay(receive_count, settings.crash_retry_seconds, settings.crash_max_retry_seconds)
            crash = error_entry(WorkerCrashedError.error_code, summary)
            _ledger_update(settings, job, retry_at=_iso_in(delay), lease_until=_iso_in(delay), error=crash)
            return delay
        if _superseded(store, job) or _already_ended(store, message):
            return None  # a newer version runs, or this delivery crashed after its job had ended
        final = abandoned_result(
            store,
            message.job_id,
            message.manifest_version,
            WorkerCrashedError(
                f"the worker crashed on each of its {receive_count} deliveries ({summary}); the job message goes to "
                "the dead-letter queue. Fix the cause (see the logs by job id), then redrive it: the job resumes "
                "where it stopped"
            ),
        )
        end_job(store, final, settings=settings, continuation=message.continuation, given_up=True)
    except Exception:  # the crash is already logged by the caller; this is best effort on top
        logger.exception("could not record the crash", extra={"job_id": message.job_id})
        return None if receive_count >= settings.job_max_receive_count else settings.crash_retry_seconds
    return None


def _already_ended(store: JobStore, message: JobMessage) -> bool:
    """The job of this message's version ended (its checkpoint says done, or the ledger says finished and
    not given up): nothing to end again, and its result must not be overwritten."""
    saved = store.read_checkpoint(message.job_id)
    state = JobState.from_bytes(saved) if saved else None
    if state is not None and state.manifest_version == message.manifest_version and state.state == "done":
        return True
    if not store.settings.jobs_table:
        return False
    record = ledger_for(store.settings).get(message.job_id)
    return (
        record is not None
        and record.manifest_version == (message.manifest_version or "")
        and record.state == "finished"
        and not record.given_up
    )


def _iso_in(seconds: float) -> str:
    return (_now() + timedelta(seconds=seconds)).isoformat(timespec="milliseconds")
