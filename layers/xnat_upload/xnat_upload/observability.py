"""Powertools logger, tracer and metrics shared by the core and the handlers.

Service name and metrics namespace come from POWERTOOLS_SERVICE_NAME and
POWERTOOLS_METRICS_NAMESPACE (set in template.yaml); the defaults keep local runs working.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit

if TYPE_CHECKING:
    from .result import JobResult

SERVICE = os.environ.get("POWERTOOLS_SERVICE_NAME", "xnat-upload")

logger = Logger(service=SERVICE)
tracer = Tracer(service=SERVICE)
metrics = Metrics(service=SERVICE, namespace=os.environ.get("POWERTOOLS_METRICS_NAMESPACE", "XnatUpload"))


_FILE_METRICS = {
    "uploaded": "FilesUploaded",
    "already_exists": "FilesAlreadyExisting",
    "failed": "FilesFailed",
    "rejected": "FilesRejected",
    "missing": "FilesMissing",
    "skipped": "FilesSkipped",
    "pending": "FilesPending",
}


def record_job_metrics(result: JobResult) -> None:
    """One data point per job: outcome, files by status, bytes, duration, XNAT requests and retries."""
    metrics.add_metric(name=f"Jobs{result.status.value.capitalize()}", unit=MetricUnit.Count, value=1)
    counts = result.counts()
    for status, name in _FILE_METRICS.items():
        metrics.add_metric(name=name, unit=MetricUnit.Count, value=counts.get(status, 0))
    sent = sum(f.bytes or 0 for f in result.files if f.status.value == "uploaded")
    metrics.add_metric(name="BytesUploaded", unit=MetricUnit.Bytes, value=sent)
    if result.duration_seconds is not None:
        metrics.add_metric(name="JobDuration", unit=MetricUnit.Seconds, value=result.duration_seconds)
    metrics.add_metric(name="XnatRequests", unit=MetricUnit.Count, value=result.xnat_requests or 0)
    metrics.add_metric(name="XnatRetries", unit=MetricUnit.Count, value=result.xnat_retries or 0)


def report_crash(what: str, error: BaseException, *, job_id: str | None, metric: str, **extra: object) -> None:
    """An unexpected exception in a record handler: one ERROR line with the job id and a redacted stack
    trace (an exception's text may quote a server's answer), and one data point of `metric`.

    Powertools' batch processor would log it at DEBUG only: without this, a crash is silent."""
    import traceback

    from .redaction import redact

    trace = "".join(traceback.format_exception(type(error), error, error.__traceback__))
    logger.error(
        what,
        extra={
            "job_id": job_id,
            "error_type": type(error).__name__,
            "error": redact(str(error)),
            "traceback": redact(trace),
            **extra,
        },
    )
    metrics.add_metric(name=metric, unit=MetricUnit.Count, value=1)
