"""`Upload Job Finished`: one EventBridge event each time a job ends (finished, refused or given up).

Put by the function that ended the job (the ledger's conditional write tells it that it was the
one), never through a DynamoDB stream, so callers need not poll and the local stack sees it as AWS
does. The ledger item says whether it went out (`event_sent`): a writer killed between its ledger
write and this put leaves `event_sent: false`, and the sweeper puts it a few minutes later.

Example::

    announce_job_end(record, settings=settings)  # after ledger.finish(...) returned the record
"""

from __future__ import annotations

import json
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from ..observability import logger
from .ledger import JobRecord, ledger_for

if TYPE_CHECKING:
    from ..config import Settings

DETAIL_TYPE = "Upload Job Finished"


def job_end_detail(record: JobRecord, settings: Settings) -> dict[str, Any]:
    """The event's detail: what a follow-up step or a notification needs, without reading the result."""
    xnat = record.xnat or {}
    return {
        "job_id": record.job_id,
        "manifest_version": record.manifest_version or None,
        "mode": record.mode,
        "status": record.status,
        "given_up": record.given_up,
        "counts": record.counts,
        "files": {"total": record.files_total, "in_xnat": record.files_done, "failed": record.files_failed},
        "bytes": record.bytes_done,
        "bytes_total": record.bytes_total,
        "result": f"s3://{settings.data_bucket}/{record.result_key or settings.results_key(record.job_id)}",
        "xnat": {name: xnat.get(name) for name in ("project", "session", "scan", "resource")},
        "net_id": record.net_id,
        "submitted_by": record.submitted_by,
        "submitted_at": record.submitted_at,
        "finished_at": record.finished_at,
        "error": record.error,
    }


def announce_job_end(record: JobRecord, *, settings: Settings) -> bool:
    """Put the job-end event, then mark it sent in the ledger. Never raises: an event that could not
    be put is left to the sweeper (the ledger still says `event_sent: false`). True when it went out."""
    entry = {
        "Source": settings.event_source,
        "DetailType": DETAIL_TYPE,
        "Detail": json.dumps(job_end_detail(record, settings)),
        "EventBusName": settings.event_bus_name,
        "Resources": [],
    }
    try:
        answer = _events_client().put_events(Entries=[entry])
        if answer.get("FailedEntryCount"):
            failure = answer["Entries"][0]
            raise RuntimeError(
                f"EventBridge refused the event: {failure.get('ErrorCode')} {failure.get('ErrorMessage')}"
            )
        ledger_for(settings).mark_event_sent(record.job_id, record.manifest_version, record.finished_at)
    except Exception:
        logger.exception("the job-end event was not put; the sweeper puts it later", extra={"job_id": record.job_id})
        return False
    logger.info("job-end event put", extra={"job_id": record.job_id, "status": record.status})
    return True


@lru_cache(maxsize=1)
def _events_client() -> Any:
    import boto3
    from botocore.config import Config

    return boto3.client("events", config=Config(retries={"mode": "standard", "max_attempts": 5}))
