"""JobQueue.fifo -> one invocation's share of a job -> result, or continuation, or a later retry.

Thin by design: decode the SQS record, hand the job message to the core (`xnat_upload.job.worker`),
act on its outcome. BatchSize is 1, so one invocation holds one XNAT resource's message group.

* The message's visibility is first cut to this invocation's own time (plus a margin): killed
  outright (timeout, out of memory), the job is back in minutes, not after six timeouts.
* A job that must wait for XNAT is hidden for a growing delay and reported as a batch item failure
  (never an invocation error); after the queue's redrive limit it lands in the dead-letter queue.
* An unexpected exception is logged at ERROR with the job id and a redacted stack trace, counted
  (`JobsCrashed`), and its message comes back after a short growing delay; on the last delivery
  the job ends with a result that names the crash, and the message goes to the dead-letter queue.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.batch import SqsFifoPartialProcessor, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext
from botocore.exceptions import ClientError

from xnat_upload import Settings
from xnat_upload.aws import s3_client, sqs_client, with_ca_bundle
from xnat_upload.job.queue import JobMessage, JobQueue, redelivery_delay
from xnat_upload.job.worker import Continued, Finished, RetryLater, Skipped, crashed, work_on_job
from xnat_upload.observability import logger, metrics, record_job_metrics, report_crash, tracer

LEASE_MARGIN_SECONDS = 60  # past the invocation's own end: a message never comes back while its worker runs


def _processor() -> SqsFifoPartialProcessor:
    """One per invocation: it holds the invocation's record outcomes (the local stack runs several
    invocations at once in one process, which Lambda never does in one environment)."""
    processor = SqsFifoPartialProcessor()
    processor.raise_on_entire_batch_failure = False  # a job waiting for XNAT is not a function error
    return processor


def shorten_lease(queue: JobQueue, record: SQSRecord, seconds: float) -> float | None:
    """Cut the message's visibility to this invocation's own time plus a margin; None (the queue's own
    visibility stands) when SQS refuses, which only costs a killed job a longer wait, never the job."""
    try:
        queue.defer(record.receipt_handle, seconds)
    except ClientError as exc:
        logger.warning("the message's visibility was not shortened", extra={"error": exc.response.get("Error")})
        return None
    return seconds


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
        receive_count = int(record.attributes.approximate_receive_count or 1)
        message: JobMessage | None = None
        try:
            message = JobMessage.from_body(record.body)
            logger.set_correlation_id(message.job_id)
            logger.append_keys(continuation=message.continuation, manifest_version=message.manifest_version)
            lease = shorten_lease(queue, record, remaining_seconds() + LEASE_MARGIN_SECONDS)
            outcome = work_on_job(
                message,
                settings=settings,
                s3=s3_client(settings),
                queue=queue,
                remaining_seconds=remaining_seconds,
                receive_count=receive_count,
                lease_seconds=lease,
            )
        except Exception as exc:
            job_id = message.job_id if message else None
            report_crash("job crashed", exc, job_id=job_id, metric="JobsCrashed", attempt=receive_count)
            delay = (
                crashed(message, exc, settings=settings, s3=s3_client(settings), receive_count=receive_count)
                if message
                else redelivery_delay(receive_count, settings.crash_retry_seconds, settings.crash_max_retry_seconds)
            )
            if delay is None:
                metrics.add_metric(name="JobsGivenUp", unit="Count", value=1)
            queue.defer(record.receipt_handle, delay or 0)  # the last delivery: on to the dead-letter queue now
            raise
        if isinstance(outcome, RetryLater):
            queue.defer(record.receipt_handle, outcome.delay_seconds)
            if outcome.final:
                record_job_metrics(outcome.result)
                metrics.add_metric(name="JobsGivenUp", unit="Count", value=1)
            else:
                metrics.add_metric(name="XnatWaits", unit="Count", value=1)
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
