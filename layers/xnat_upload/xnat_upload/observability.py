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
