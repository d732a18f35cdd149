"""S3 `ObjectCreated` on `manifests/*.json` -> run the job -> `results/<job_id>.json`.

Thin by design: decode the event, hand each manifest version to the core once, shape a summary.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote_plus

from aws_lambda_powertools.utilities.data_classes import S3Event
from aws_lambda_powertools.utilities.idempotency.exceptions import IdempotencyAlreadyInProgressError
from aws_lambda_powertools.utilities.typing import LambdaContext

from xnat_upload import Settings, process_manifest_object
from xnat_upload.aws import s3_client
from xnat_upload.idempotency import deduplicated
from xnat_upload.observability import logger, metrics, record_job_metrics, tracer


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics(capture_cold_start_metric=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    settings = Settings.from_env()
    s3 = s3_client(settings)

    def remaining_seconds() -> float:
        return context.get_remaining_time_in_millis() / 1000

    def run(job: dict[str, Any]) -> dict[str, Any]:
        result = process_manifest_object(
            job["key"], settings=settings, s3=s3, version_id=job["version_id"], remaining_seconds=remaining_seconds
        )
        if result is None:
            return {"key": job["key"], "status": "ignored"}
        record_job_metrics(result)
        return {
            "job_id": result.job_id,
            "status": result.status.value,
            "result": settings.results_key(str(result.job_id)),
        }

    run_once = deduplicated(run, settings, context)
    jobs: list[dict[str, Any]] = []
    crashes: list[Exception] = []
    for record in S3Event(event).records:
        bucket = record.s3.bucket.name
        key = unquote_plus(record.s3.get_object.key)  # S3 events encode keys, '+' for space
        if bucket != settings.data_bucket or settings.job_id_for(key) is None:
            logger.info("ignoring an object that is not a manifest", extra={"bucket": bucket, "key": key})
            continue
        job = {
            "bucket": bucket,
            "key": key,
            "version_id": record.s3.get_object.version_id,
            "etag": record.s3.get_object.etag,
        }
        logger.set_correlation_id(settings.job_id_for(key))
        logger.append_keys(manifest_key=key)
        try:
            jobs.append(run_once(job=job))
        except IdempotencyAlreadyInProgressError:
            # A duplicate delivery while the first is still running: that run writes the result.
            logger.info("this manifest version is already being processed", extra={"key": key})
            jobs.append({"key": key, "status": "already_in_progress"})
        except Exception as exc:  # the result is already written; fail the invocation after the other records
            logger.exception("manifest processing failed", extra={"key": key})
            crashes.append(exc)
    if crashes:
        raise crashes[0]
    return {"jobs": jobs}
