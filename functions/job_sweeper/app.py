"""A schedule (every few minutes) -> jobs whose message went to the dead-letter queue are ended.

Thin by design: the core (`xnat_upload.job.sweeper`) finds, in the jobs ledger, the jobs nobody
works on any more (their worker killed on every delivery) and ends each with a result, a ledger
item and an event that say why; it also puts job-end events that were not put. It reads no queue:
the dead-letter queue keeps its messages for a redrive.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from xnat_upload import Settings
from xnat_upload.aws import s3_client
from xnat_upload.job.sweeper import sweep
from xnat_upload.observability import logger, metrics, tracer


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    settings = Settings.from_env()
    swept = sweep(settings=settings, s3=s3_client(settings))
    if swept.ended:
        metrics.add_metric(name="JobsGivenUp", unit="Count", value=len(swept.ended))
    if swept.announced:
        metrics.add_metric(name="JobEventsLate", unit="Count", value=len(swept.announced))
    return {"ended": swept.ended, "announced": swept.announced}
