"""Lambda's SQS event source mapping, for the local stack: the one part of the queue flow that is ours.

The queues are moto's real SQS (FIFO groups, deduplication, visibility, redrive); this only does
what the Lambda service does between a queue and a function:

* receives up to `batch_size` messages (with every attribute, as Lambda asks for them) and invokes
  the handler with an SQS event of the real shape and a context with the function's timeout;
* runs at most `maximum_concurrency` invocations at once (`ScalingConfig.MaximumConcurrency`);
* deletes what succeeded: everything when the handler returns without `batchItemFailures`, all but
  the listed ones when it lists some, nothing when it raises, lists an unknown id, or overruns its
  timeout (then the messages come back when their visibility timeout ends, as in Lambda);
* leaves a visibility the handler changed alone (a delayed retry is the handler's to set).

FIFO groups are delivered by SQS itself (one in-flight message per group). moto decides that from
a snapshot taken at the start of each receive, so concurrent receives could both take one group;
receives are therefore made one at a time per queue, which SQS guarantees on its side. One known
difference stays: moto drops a duplicate MessageDeduplicationId only while the first message is
still in the queue, SQS for five minutes after it was sent, deleted or not.

Example::

    worker = SqsEventSource(sqs, queue_url, handler, batch_size=1, maximum_concurrency=4, function_timeout=900)
    worker.poll_once()          # one synchronous round (tests)
    worker.start(); ...; worker.stop()   # background pollers (make serve)
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .lambda_context import LocalLambdaContext

Handler = Callable[[dict[str, Any], Any], Any]
MAX_IDLE_PAUSE = 0.5  # seconds between polls of a queue that stayed empty
log = logging.getLogger("devserver.event_source")


@dataclass
class EventSourceStats:
    invocations: int = 0
    messages: int = 0
    failed_items: int = 0
    errors: int = 0  # invocations that raised: their whole batch came back
    overruns: int = 0  # invocations that outlived their timeout: Lambda would have killed them
    max_concurrent: int = 0
    longest_seconds: float = 0.0  # the longest invocation, to set beside the function timeout
    errors_seen: list[str] = field(default_factory=list)


class SqsEventSource:
    def __init__(
        self,
        sqs: Any,
        queue_url: str,
        handler: Handler,
        *,
        batch_size: int,
        function_timeout: float,
        maximum_concurrency: int = 1,
        function_name: str = "local-function",
        idle_pause: float = 0.05,
    ) -> None:
        self._sqs = sqs
        self.queue_url = queue_url
        self._handler = handler
        self._batch_size = batch_size
        self.function_timeout = function_timeout
        self._concurrency = maximum_concurrency
        self._name = function_name
        self._idle_pause = idle_pause
        attributes = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]
        self._arn = attributes["QueueArn"]
        self._receive_lock = threading.Lock()
        self._state = threading.Lock()
        self._running = 0
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.stats = EventSourceStats()
        self.deferred: list[str] = []  # receipt handles of messages the handler reported as failed

    # -- one round -------------------------------------------------------------------------------

    def poll_once(self) -> int:
        """Receive one batch and invoke the handler with it; returns how many messages it held."""
        with self._receive_lock:
            messages = self._sqs.receive_message(
                QueueUrl=self.queue_url,
                MaxNumberOfMessages=self._batch_size,
                AttributeNames=["All"],
                MessageAttributeNames=["All"],
                WaitTimeSeconds=0,
            ).get("Messages", [])
        if messages:
            self._invoke(messages)
        return len(messages)

    def _invoke(self, messages: list[dict[str, Any]]) -> None:
        event = {"Records": [self._record(m) for m in messages]}
        context = LocalLambdaContext(self._name, self.function_timeout)
        with self._state:
            self._running += 1
            self.stats.invocations += 1
            self.stats.messages += len(messages)
            self.stats.max_concurrent = max(self.stats.max_concurrent, self._running)
        started = time.monotonic()
        try:
            response = self._handler(event, context)
        except Exception as exc:  # Lambda retries the whole batch after the visibility timeout
            log.warning("%s raised %r; its batch returns to the queue", self._name, exc)
            with self._state:
                self.stats.errors += 1
                self.stats.errors_seen.append(repr(exc))
            return
        finally:
            with self._state:
                self._running -= 1
                self.stats.longest_seconds = max(self.stats.longest_seconds, time.monotonic() - started)
        if context.get_remaining_time_in_millis() <= 0:
            log.warning("%s outlived its %s s timeout; Lambda would have killed it", self._name, self.function_timeout)
            with self._state:
                self.stats.overruns += 1
            return
        failed = self._failed_ids(response, messages)
        with self._state:
            self.stats.failed_items += len(failed)
            self.deferred.extend(m["ReceiptHandle"] for m in messages if m["MessageId"] in failed)
        done = [m for m in messages if m["MessageId"] not in failed]
        for message in done:
            self._sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"])

    @staticmethod
    def _failed_ids(response: Any, messages: list[dict[str, Any]]) -> set[str]:
        """The partial batch response, read as Lambda reads it: a malformed one fails the batch."""
        every = {m["MessageId"] for m in messages}
        if not isinstance(response, dict) or not response.get("batchItemFailures"):
            return set()
        ids = {item.get("itemIdentifier") if isinstance(item, dict) else None for item in response["batchItemFailures"]}
        return ids if ids <= every else every

    def _record(self, message: dict[str, Any]) -> dict[str, Any]:
        body = message["Body"]
        return {
            "messageId": message["MessageId"],
            "receiptHandle": message["ReceiptHandle"],
            "body": body,
            "attributes": dict(message.get("Attributes", {})),
            "messageAttributes": message.get("MessageAttributes", {}),
            "md5OfBody": message.get("MD5OfBody") or hashlib.md5(body.encode()).hexdigest(),  # noqa: S324 - SQS's own
            "eventSource": "aws:sqs",
            "eventSourceARN": self._arn,
            "awsRegion": self._arn.split(":")[3],
        }

    def release_deferred(self) -> int:
        """Make the messages the handler hid (a retry delay) visible now: tests move time forward
        this way instead of sleeping. Returns how many were released."""
        with self._state:
            handles, self.deferred = self.deferred, []
        released = 0
        for handle in handles:
            try:
                self._sqs.change_message_visibility(QueueUrl=self.queue_url, ReceiptHandle=handle, VisibilityTimeout=0)
                released += 1
            except self._sqs.exceptions.ClientError:  # already moved on (deleted, or to the DLQ)
                continue
        return released

    # -- background pollers ----------------------------------------------------------------------

    def start(self) -> SqsEventSource:
        """`maximum_concurrency` pollers, each invoking one batch at a time."""
        self._stop.clear()
        for index in range(self._concurrency):
            thread = threading.Thread(target=self._run, name=f"{self._name}-poller-{index}", daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def _run(self) -> None:
        """Poll; when the queue is empty, wait a little longer each time (up to `MAX_IDLE_PAUSE`), so an
        idle local stack costs a few requests a second, not hundreds. (Long polling would not do:
        moto spins for the whole wait when a FIFO queue holds only messages of groups in flight.)"""
        pause = self._idle_pause
        while not self._stop.is_set():
            try:
                received = self.poll_once()
            except Exception:  # the queue server going away while stopping, say
                log.exception("%s poller failed", self._name)
                received = 0
            if received:
                pause = self._idle_pause
            else:
                self._stop.wait(pause)
                pause = min(MAX_IDLE_PAUSE, pause * 2)

    def stop(self, wait: float = 5.0) -> None:
        """Stop polling; an invocation still running gets `wait` seconds to end (the pollers are daemon
        threads: a process that exits does not wait for one stuck in a handler)."""
        self._stop.set()
        deadline = time.monotonic() + wait
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        self._threads.clear()

    @property
    def busy(self) -> bool:
        with self._state:
            return self._running > 0


def wait_until(condition: Callable[[], bool], timeout: float, pause: float = 0.02) -> bool:
    """Poll `condition` until it holds or `timeout` passes (for work running on pollers)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(pause)
    return True
