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


def record_job_metrics(result: JobResult) -> None:
    """One data point per job outcome and per file status, plus bytes moved."""
    metrics.add_metric(name=f"Jobs{result.status.value.capitalize()}", unit=MetricUnit.Count, value=1)
    for status, count in result.counts().items():
        metrics.add_metric(name=f"Files_{status}", unit=MetricUnit.Count, value=count)
    sent = sum(f.bytes or 0 for f in result.files if f.status.value == "uploaded")
    metrics.add_metric(name="BytesUploaded", unit=MetricUnit.Bytes, value=sent)
