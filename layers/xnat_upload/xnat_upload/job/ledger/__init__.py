"""The jobs ledger: one item per job that says where it is, across jobs and over months.

The intake opens a job's item (queued, or finished at once when it refuses the manifest), the
worker moves it (running, waiting_for_xnat, finished), the sweeper ends jobs whose message went to
the dead-letter queue. Every write is conditional on the manifest version, so a stale writer fails
atomically (`StaleWriteError`, or False) instead of checking first and writing after. The API, the
CLI and the dashboard read it; the result manifest in S3 stays the full per-file record.

Example::

    from xnat_upload.job.ledger import JobRecord, ledger_for

    ledger = ledger_for(settings)
    ledger.open(JobRecord("ab12", "v1", submitted_by="arn:aws:iam::1:role/pipeline"))
    jobs, next_token = ledger.list_jobs(status="failed", since="2026-12-01T00:00:00")
"""

from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING

from .base import Ledger
from .dynamodb import DynamoDBLedger
from .exceptions import StaleWriteError
from .record import OPEN_STATES, STATES, JobRecord, Progress, State, error_entry, job_error, now_iso

if TYPE_CHECKING:
    from ...config import Settings


@lru_cache(maxsize=4)
def ledger_for(settings: Settings) -> Ledger:
    """The ledger named by JOBS_TABLE, with one client per container (warm invocations reuse it)."""
    import boto3
    from botocore.config import Config

    client = boto3.client("dynamodb", config=Config(retries={"mode": "standard", "max_attempts": 5}))
    return DynamoDBLedger(client, settings.require_jobs_table(), settings.ledger_retention_days)


__all__ = [
    "OPEN_STATES",
    "STATES",
    "DynamoDBLedger",
    "JobRecord",
    "Ledger",
    "Progress",
    "StaleWriteError",
    "State",
    "error_entry",
    "job_error",
    "ledger_for",
    "now_iso",
]
