"""IntakeQueue (S3 `ObjectCreated` on `manifests/*.json`) -> a validated job on JobQueue.fifo.

Thin by design: each SQS record's body is an S3 event notification (or S3's `s3:TestEvent`, sent
once when the notification is configured, which is ignored); each manifest version in it goes to
the core (`xnat_upload.job.intake`) once. A record that fails (S3 unreachable, a bug) is logged at
ERROR with a redacted stack trace, counted (`IntakeErrors`), hidden for a short growing delay and
reported as a batch item failure; on its last delivery the job's result and ledger item say so, and
the record goes on to the intake's DLQ.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import unquote_plus

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes import S3Event
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.idempotency.exceptions import IdempotencyAlreadyInProgressError
from aws_lambda_powertools.utilities.typing import LambdaContext

from xnat_upload import Settings
from xnat_upload.aws import s3_client, sqs_client
from xnat_upload.job.idempotency import deduplicated
from xnat_upload.job.intake import accept_manifest, current_version, intake_crashed
from xnat_upload.job.queue import JobQueue, RecordVisibility, redelivery_delay
from xnat_upload.observability import logger, metrics, report_crash, tracer


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics(capture_cold_start_metric=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    settings = Settings.from_env()
    s3 = s3_client(settings)
    queue = JobQueue(sqs_client(settings), settings.require_job_queue())

    visibility = RecordVisibility(sqs_client(settings))

    def accept(job: dict[str, Any]) -> dict[str, Any]:
        intake = accept_manifest(
            job["key"],
            version_id=job["version_id"],
            settings=settings,
            s3=s3,
            queue=queue,
            submitted_by=job.get("principal"),
            sequencer=job.get("sequencer") or "",
        )
        metrics.add_metric(name=f"Manifests{intake.status.capitalize()}", unit="Count", value=1)
        return {"job_id": intake.job_id, "status": intake.status, "reason": intake.reason}

    accept_once = deduplicated(accept, settings, context)

    def handle(record: SQSRecord) -> list[dict[str, Any]]:
        attempt = int(record.attributes.approximate_receive_count or 1)
        jobs: list[dict[str, Any]] = []
        try:
            return accept_all(record, jobs)
        except Exception as exc:
            job = jobs[-1] if jobs else {}
            report_crash(
                "intake failed", exc, job_id=settings.job_id_for(job.get("key", "")), metric="IntakeErrors",
                attempt=attempt,
            )  # fmt: skip
            last = attempt >= settings.intake_max_receive_count
            if job:
                intake_crashed(
                    job["key"], version_id=job.get("version_id"), error=exc, settings=settings, s3=s3, last=last,
                    sequencer=job.get("sequencer") or "",
                )  # fmt: skip
            delay = (
                0 if last else redelivery_delay(attempt, settings.crash_retry_seconds, settings.crash_max_retry_seconds)
            )
            try:
                visibility.defer(record.event_source_arn, record.receipt_handle, delay)
            except Exception:  # the queue's own visibility timeout brings it back then
                logger.exception("could not defer the failed record")
            raise

    def accept_all(record: SQSRecord, jobs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        notification = json.loads(record.body)
        if notification.get("Event") == "s3:TestEvent":
            logger.info("ignoring S3's test event")
            return []
        handled = []
        for s3_record in S3Event(notification).records:
            bucket = s3_record.s3.bucket.name
            key = unquote_plus(s3_record.s3.get_object.key)  # S3 events encode keys, '+' for space
            if bucket != settings.data_bucket or settings.job_id_for(key) is None:
                logger.info("ignoring an object that is not a manifest", extra={"bucket": bucket, "key": key})
                continue
            logger.set_correlation_id(settings.job_id_for(key))
            job = {"bucket": bucket, "key": key}
            jobs.append(job)
            job.update(
                {
                    # Events from a versioned bucket carry the version; one that does not (moto's) means the
                    # current one, resolved now so that each version has its own idempotency key.
                    "version_id": s3_record.s3.get_object.version_id or current_version(key, settings=settings, s3=s3),
                    "etag": s3_record.s3.get_object.etag,
                    "sequencer": s3_record.s3.get_object.get("sequencer"),
                    "principal": (s3_record.get("userIdentity") or {}).get("principalId"),
                }
            )
            try:
                handled.append(accept_once(job=job))
            except IdempotencyAlreadyInProgressError:  # a duplicate while the first is being handled
                handled.append({"key": key, "status": "already_in_progress"})
        return handled

    # A processor per invocation: it holds the invocation's record outcomes.
    processor = BatchProcessor(event_type=EventType.SQS)
    return process_partial_response(event=event, record_handler=handle, processor=processor, context=context)
