"""Ends the jobs that nobody works on any more, and announces ends that were not announced.

A worker killed outright (out of memory, the function timeout) runs no `except` and no `finally`:
if that happens on every delivery its queue allows, the message goes to the dead-letter queue and
nothing in the job's own code is left to say so. The ledger knows enough to tell: each delivery
writes its `attempt` and `lease_until` (when the message comes back if the invocation dies). An
item whose last allowed delivery started, whose lease ran out more than a grace period ago, and
that nobody wrote since, belongs to a message in the dead-letter queue. The sweeper ends such a
job as the worker would have: a result listing what was done (from the checkpoint), the ledger's
end (conditional: a worker that wrote in between wins) and the event. It never touches the
dead-letter queue: redriving the message resumes the job from its checkpoint, and the ledger item
reopens (`given_up` items accept their redriven message's writes).

It also puts the job-end events that a writer killed after its ledger write never put.

Example::

    swept = sweep(settings=Settings.from_env(), s3=boto3.client("s3"))
    swept.ended  # ["ab12"]: job ids it ended
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from ..exceptions import JobEndedAbnormallyError, JobStalledError, WorkerKilledError
from ..observability import logger
from ..store import JobStore
from .ending import abandoned_result, end_fields
from .events import announce_job_end
from .ledger import JobRecord, ledger_for

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

    from ..config import Settings

EVENT_LOOKBACK = timedelta(days=1)  # ends older than this without their event are counted and logged, not put
QUEUE_RETENTION = timedelta(days=14)  # the job queue keeps a message this long (SQS's maximum, template.yaml)


@dataclass
class Sweep:
    ended: list[str] = field(default_factory=list)  # jobs given up (message in the dead-letter queue)
    announced: list[str] = field(default_factory=list)  # job ends whose event was put late
    failed: list[str] = field(default_factory=list)  # jobs it could not end this time (logged; the next run tries)


def sweep(*, settings: Settings, s3: S3Client, now: datetime | None = None) -> Sweep:
    now = now or datetime.now(UTC)
    ledger = ledger_for(settings)
    grace = timedelta(seconds=settings.dead_letter_grace_seconds)
    quiet_since = _iso(now - grace)
    swept = Sweep()
    for record in ledger.open_jobs_quiet_since(quiet_since):
        try:  # one job that cannot be ended (an unreadable checkpoint, S3 refusing) stops no other
            error = abandonment(record, settings, now)
            if error is not None and _give_up(record, error, settings, s3):
                swept.ended.append(record.job_id)
        except Exception:
            swept.failed.append(record.job_id)
            logger.exception("could not end an abandoned job", extra={"job_id": record.job_id})
    for record in ledger.finished_without_event(_iso(now - EVENT_LOOKBACK), quiet_since):
        if announce_job_end(record, settings=settings):
            swept.announced.append(record.job_id)
    unannounced = [
        r.job_id for r in ledger.finished_without_event(_iso(now - EVENT_LOOKBACK * 30), _iso(now - EVENT_LOOKBACK))
    ]
    if unannounced:  # EventBridge refused them for a day: an operator decides (docs/ledger.md)
        logger.error("job ends older than a day were never announced", extra={"jobs": unannounced[:100]})
    if swept.ended or swept.announced or swept.failed:
        logger.info("sweep", extra={"ended": swept.ended, "announced": swept.announced, "failed": swept.failed})
    return swept


def abandonment(record: JobRecord, settings: Settings, now: datetime) -> JobEndedAbnormallyError | None:
    """Why nobody will work on this job again (its message is in the dead-letter queue), or None."""
    grace = timedelta(seconds=settings.dead_letter_grace_seconds)
    lease_over = record.lease_until is not None and _parse(record.lease_until) + grace < now
    if record.attempt is not None and record.attempt >= settings.job_max_receive_count and lease_over:
        return WorkerKilledError(
            f"the worker was killed (out of memory or the function timeout: see its logs by job id) on the last "
            f"of its {record.attempt} deliveries, which ended without a word; the job message is in the job "
            "dead-letter queue: fix the cause (memory, timeout, batch size), then redrive it to resume the job"
        )
    # Nobody wrote for longer than its message can live: every delivery the queue allows, once one started
    # (a worker that died each time before it could write); else the queue's retention, since a message
    # may wait that long behind its XNAT resource's other jobs before its first delivery.
    delivered = bool(record.attempt)
    lifetime = (
        timedelta(seconds=settings.job_max_receive_count * settings.job_queue_visibility_seconds)
        if delivered
        else QUEUE_RETENTION
    ) + grace
    if record.updated_at is not None and _parse(record.updated_at) + lifetime < now:
        return JobStalledError(
            f"no worker reported on the job since {record.updated_at} ({record.state}), longer than its message "
            "can be delivered; it is most likely in the job dead-letter queue: check the worker's logs, then "
            "redrive the message (or re-put the manifest)"
        )
    return None


def _give_up(record: JobRecord, error: JobEndedAbnormallyError, settings: Settings, s3: S3Client) -> bool:
    """End the job as the worker would have (result first, then the ledger's end, then the event)."""
    store = JobStore(s3, settings)
    ledger = ledger_for(settings)
    result = abandoned_result(store, record.job_id, record.manifest_version or None, error)
    # A redriven message's worker may have reopened the job since the listing: never write over its result.
    now = ledger.get(record.job_id)
    if now is None or (now.manifest_version, now.state, now.updated_at) != (
        record.manifest_version,
        record.state,
        record.updated_at,
    ):
        return False
    store.write_result(result)
    ended = ledger.give_up(record, **end_fields(result, settings))
    if ended is None:
        logger.info("a worker moved the job meanwhile: not given up", extra={"job_id": record.job_id})
        return False
    logger.error("job given up: its message is in the dead-letter queue", extra={"job_id": record.job_id,
                 "error_code": error.error_code})  # fmt: skip
    announce_job_end(ended, settings=settings)
    return True


def _parse(value: str) -> datetime:
    parsed = datetime.fromisoformat(value)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _iso(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds")
