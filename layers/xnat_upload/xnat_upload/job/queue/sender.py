"""Sending job messages to JobQueue.fifo and deferring one that must wait (XNAT down)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from .messages import JobMessage

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient

SQS_MAX_VISIBILITY_SECONDS = 12 * 3600


class MessageSender(Protocol):
    def send(self, message: JobMessage, group_id: str) -> str: ...


class JobQueue:
    """The FIFO job queue behind `JOB_QUEUE_URL`.

    Example::

        queue = JobQueue(boto3.client("sqs"), settings.job_queue_url)
        queue.send(message, group_id)
        queue.defer(receipt_handle, 120)  # visible again in two minutes
    """

    def __init__(self, sqs: SQSClient, queue_url: str) -> None:
        self._sqs = sqs
        self.url = queue_url

    def send(self, message: JobMessage, group_id: str) -> str:
        """Enqueue; a message with the same deduplication id within five minutes is dropped by SQS."""
        response = self._sqs.send_message(
            QueueUrl=self.url,
            MessageBody=message.to_body(),
            MessageGroupId=group_id,
            MessageDeduplicationId=message.deduplication_id,
        )
        return str(response["MessageId"])

    def defer(self, receipt_handle: str, seconds: int) -> None:
        """Keep a received message invisible for `seconds` more: it is redelivered then (its group
        waits with it, which is right: the same XNAT is down for every job of the group)."""
        seconds = max(0, min(int(seconds), SQS_MAX_VISIBILITY_SECONDS))
        self._sqs.change_message_visibility(QueueUrl=self.url, ReceiptHandle=receipt_handle, VisibilityTimeout=seconds)


class RecordVisibility:
    """Hides a received message of any queue for a while, by its event source ARN (the intake's
    queue has no sender of its own here). Queue URLs are looked up once per queue.

    Example::

        RecordVisibility(sqs).defer(record.event_source_arn, record.receipt_handle, 30)
    """

    def __init__(self, sqs: SQSClient) -> None:
        self._sqs = sqs
        self._urls: dict[str, str] = {}

    def defer(self, queue_arn: str, receipt_handle: str, seconds: float) -> None:
        url = self._urls.get(queue_arn)
        if url is None:
            *_, account, name = queue_arn.split(":")
            url = self._sqs.get_queue_url(QueueName=name, QueueOwnerAWSAccountId=account)["QueueUrl"]
            self._urls[queue_arn] = url
        seconds = max(0, min(int(seconds), SQS_MAX_VISIBILITY_SECONDS))
        self._sqs.change_message_visibility(QueueUrl=url, ReceiptHandle=receipt_handle, VisibilityTimeout=seconds)
