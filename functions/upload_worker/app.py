"""JobQueue.fifo -> one invocation's share of a job -> result, or continuation, or a later retry.

Thin by design: decode the SQS record, hand the job message to the core (`xnat_upload.job.worker`),
act on its outcome. BatchSize is 1, so one invocation holds one XNAT resource's message group.
A job that must wait for XNAT is hidden for a growing delay and reported as a batch item failure
(never an invocation error); after the queue's redrive limit it lands in the dead-letter queue.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.batch import SqsFifoPartialProcessor, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from xnat_upload import Settings
from xnat_upload.aws import s3_client, sqs_client, with_ca_bundle
from xnat_upload.job.queue import JobMessage, JobQueue
from xnat_upload.job.worker import Continued, Finished, RetryLater, Skipped, work_on_job
from xnat_upload.observability import logger, metrics, record_job_metrics, tracer


def _processor() -> SqsFifoPartialProcessor:
    """One per invocation: it holds the invocation's record outcomes (the local stack runs several
    invocations at once in one process, which Lambda never does in one environment)."""
    processor = SqsFifoPartialProcessor()
    processor.raise_on_entire_batch_failure = False  # a job waiting for XNAT is not a function error
    return processor


class WaitingForXnat(Exception):
    """Marks the record as a batch item failure: SQS redelivers it after the delay set on it."""


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics(capture_cold_start_metric=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    # A private CA for XNAT (XNAT_CA_BUNDLE_S3_URI) is fetched on the first invocation of a container.
    configured = Settings.from_env()
    settings = with_ca_bundle(configured, s3_client(configured))
    queue = JobQueue(sqs_client(settings), settings.require_job_queue())

    def remaining_seconds() -> float:
        return context.get_remaining_time_in_millis() / 1000

    def handle(record: SQSRecord) -> str:
        message = JobMessage.from_body(record.body)
        logger.set_correlation_id(message.job_id)
        logger.append_keys(continuation=message.continuation, manifest_version=message.manifest_version)
        outcome = work_on_job(
            message,
            settings=settings,
            s3=s3_client(settings),
            queue=queue,
            remaining_seconds=remaining_seconds,
            receive_count=int(record.attributes.approximate_receive_count or 1),
        )
        if isinstance(outcome, RetryLater):
            queue.defer(record.receipt_handle, outcome.delay_seconds)
            if outcome.final:
                record_job_metrics(outcome.result)
            raise WaitingForXnat(f"XNAT unavailable; job {message.job_id} retried in {outcome.delay_seconds} s")
        if isinstance(outcome, Finished):
            record_job_metrics(outcome.result)
            return outcome.result.status.value
        if isinstance(outcome, Continued):
            metrics.add_metric(name="JobContinuations", unit="Count", value=1)
            return "continued"
        assert isinstance(outcome, Skipped)
        logger.info("job message skipped", extra={"reason": outcome.reason})
        return "skipped"

    return process_partial_response(event=event, record_handler=handle, processor=_processor(), context=context)
