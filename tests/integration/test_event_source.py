"""The local stand-in for Lambda's SQS event source mapping, against moto's real SQS: what it must do
for the local stack to behave as AWS does (batch size, concurrency, partial failures, visibility,
redrive, one message of a FIFO group at a time)."""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest

from devserver.event_source import SqsEventSource, wait_until
from devserver.local_s3 import LocalAws


@pytest.fixture
def sqs(local_aws: LocalAws) -> Iterator[Any]:
    local_aws.reset()
    yield local_aws.client("sqs")


def make_queue(sqs: Any, name: str, fifo: bool = False, max_receive_count: int | None = None) -> str:
    attributes = {"FifoQueue": "true"} if fifo else {}
    attributes["VisibilityTimeout"] = "600"
    if max_receive_count is not None:
        dlq = sqs.create_queue(QueueName=f"{name}-dlq" + (".fifo" if fifo else ""), Attributes=dict(attributes))
        arn = sqs.get_queue_attributes(QueueUrl=dlq["QueueUrl"], AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        attributes["RedrivePolicy"] = json.dumps({"deadLetterTargetArn": arn, "maxReceiveCount": max_receive_count})
    return sqs.create_queue(QueueName=name + (".fifo" if fifo else ""), Attributes=attributes)["QueueUrl"]


def depth(sqs: Any, url: str) -> int:
    attributes = sqs.get_queue_attributes(
        QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
    )["Attributes"]
    return sum(int(v) for v in attributes.values())


def test_batches_hold_at_most_batch_size_records_of_the_lambda_shape(sqs: Any) -> None:
    url = make_queue(sqs, "batches")
    for index in range(25):
        sqs.send_message(QueueUrl=url, MessageBody=f"m{index}")
    sizes: list[int] = []

    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        sizes.append(len(event["Records"]))
        record = event["Records"][0]
        assert record["eventSource"] == "aws:sqs" and record["eventSourceARN"].endswith(":batches")
        assert record["attributes"]["ApproximateReceiveCount"] == "1"
        assert context.get_remaining_time_in_millis() > 0
        return {"batchItemFailures": []}

    source = SqsEventSource(sqs, url, handler, batch_size=10, function_timeout=30)
    while source.poll_once():
        pass

    assert max(sizes) <= 10 and sum(sizes) == 25
    assert depth(sqs, url) == 0, "a batch without failures is deleted"


def test_only_the_reported_failures_stay_and_a_raising_handler_keeps_its_whole_batch(sqs: Any) -> None:
    url = make_queue(sqs, "partial")
    for body in ("keep", "drop", "drop"):
        sqs.send_message(QueueUrl=url, MessageBody=body)

    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        return {
            "batchItemFailures": [{"itemIdentifier": r["messageId"]} for r in event["Records"] if r["body"] == "keep"]
        }

    source = SqsEventSource(sqs, url, handler, batch_size=10, function_timeout=30)
    assert source.poll_once() == 3
    assert depth(sqs, url) == 1 and source.stats.failed_items == 1

    def raising(event: dict[str, Any], context: Any) -> None:
        raise RuntimeError("crash")

    assert source.release_deferred() == 1
    crashing = SqsEventSource(sqs, url, raising, batch_size=10, function_timeout=30)
    assert crashing.poll_once() == 1
    assert depth(sqs, url) == 1 and crashing.stats.errors == 1


def test_a_malformed_partial_response_fails_the_whole_batch_as_lambda_does(sqs: Any) -> None:
    url = make_queue(sqs, "malformed")
    sqs.send_message(QueueUrl=url, MessageBody="a")
    source = SqsEventSource(
        sqs,
        url,
        lambda e, c: {"batchItemFailures": [{"itemIdentifier": "not-in-the-batch"}]},
        batch_size=1,
        function_timeout=30,
    )
    source.poll_once()
    assert depth(sqs, url) == 1


def test_a_visibility_the_handler_set_holds_the_message_back(sqs: Any) -> None:
    url = make_queue(sqs, "deferred")
    sqs.send_message(QueueUrl=url, MessageBody="later")

    def defer(event: dict[str, Any], context: Any) -> dict[str, Any]:
        record = event["Records"][0]
        sqs.change_message_visibility(QueueUrl=url, ReceiptHandle=record["receiptHandle"], VisibilityTimeout=600)
        return {"batchItemFailures": [{"itemIdentifier": record["messageId"]}]}

    source = SqsEventSource(sqs, url, defer, batch_size=1, function_timeout=30)
    assert source.poll_once() == 1
    assert source.poll_once() == 0, "hidden for the delay the handler chose"
    assert source.release_deferred() == 1
    assert source.poll_once() == 1


def test_a_message_failing_every_delivery_moves_to_the_dead_letter_queue(sqs: Any) -> None:
    url = make_queue(sqs, "redrive", max_receive_count=3)
    sqs.send_message(QueueUrl=url, MessageBody="poison")
    failing = SqsEventSource(
        sqs, url, lambda e, c: {"batchItemFailures": [{"itemIdentifier": e["Records"][0]["messageId"]}]},
        batch_size=1, function_timeout=30,
    )  # fmt: skip
    deliveries = 0
    while failing.poll_once():
        deliveries += 1
        failing.release_deferred()
    dlq = sqs.get_queue_url(QueueName="redrive-dlq")["QueueUrl"]
    assert deliveries == 3 and depth(sqs, url) == 0 and depth(sqs, dlq) == 1


def test_fifo_groups_are_delivered_one_message_at_a_time_and_concurrency_is_bounded(sqs: Any) -> None:
    url = make_queue(sqs, "jobs", fifo=True)
    for index in range(40):
        group = f"resource-{index % 5}"
        sqs.send_message(
            QueueUrl=url, MessageBody=f"{group}:{index}", MessageGroupId=group, MessageDeduplicationId=str(index)
        )
    lock = threading.Lock()
    in_flight: Counter[str] = Counter()
    order: dict[str, list[int]] = {}
    overlaps: list[str] = []
    running = [0, 0]  # now, most

    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        (record,) = event["Records"]
        group, index = record["body"].split(":")
        with lock:
            in_flight[group] += 1
            running[0] += 1
            running[1] = max(running)
            if in_flight[group] > 1:
                overlaps.append(group)
            order.setdefault(group, []).append(int(index))
        time.sleep(0.01)  # a little work, so that overlapping deliveries would show
        with lock:
            in_flight[group] -= 1
            running[0] -= 1
        return {"batchItemFailures": []}

    source = SqsEventSource(sqs, url, handler, batch_size=1, function_timeout=30, maximum_concurrency=4).start()
    try:
        assert wait_until(lambda: sum(len(v) for v in order.values()) == 40, timeout=60)
    finally:
        source.stop()

    assert overlaps == [], "a FIFO group never has two messages in flight"
    assert running[1] <= 4 and source.stats.max_concurrent <= 4
    assert all(indexes == sorted(indexes) for indexes in order.values()), "in order within each group"
