"""S3 `ObjectCreated` on `manifests/*.json` -> run the job -> `results/<job_id>.json`.

Thin by design: decode the event, hand each manifest key to the core, shape a summary.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote_plus

from aws_lambda_powertools.utilities.data_classes import S3Event
from aws_lambda_powertools.utilities.typing import LambdaContext

from xnat_upload import Settings, process_manifest_object
from xnat_upload.aws import s3_client
from xnat_upload.observability import logger, metrics, record_job_metrics, tracer


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    settings = Settings.from_env()
    s3 = s3_client(settings)

    def remaining_seconds() -> float:
        return context.get_remaining_time_in_millis() / 1000

    jobs: list[dict[str, Any]] = []
    crashes: list[Exception] = []
    for record in S3Event(event).records:
        bucket = record.s3.bucket.name
        key = unquote_plus(record.s3.get_object.key)  # S3 events encode keys, '+' for space
        if bucket != settings.data_bucket:
            logger.warning("ignoring an object from another bucket", extra={"bucket": bucket, "key": key})
            continue
        version_id = record.s3.get_object.version_id or None
        logger.append_keys(manifest_key=key)
        try:
            result = process_manifest_object(
                key, settings=settings, s3=s3, version_id=version_id, remaining_seconds=remaining_seconds
            )
        except Exception as exc:  # the result is already written; fail the invocation after the other records
            crashes.append(exc)
            continue
        if result is not None:
            record_job_metrics(result)
            jobs.append(
                {
                    "job_id": result.job_id,
                    "status": result.status.value,
                    "result": settings.results_key(str(result.job_id)),
                }
            )
    if crashes:
        raise crashes[0]
    return {"jobs": jobs}
