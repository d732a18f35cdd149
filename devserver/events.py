"""Lambda events of the real shapes, built for local runs (S3 notifications as AWS sends them)."""

from __future__ import annotations

import hashlib
import time
import uuid
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote_plus


def s3_put_event(bucket: str, key: str, size: int, etag: str, version_id: str | None = None) -> dict[str, Any]:
    """An `ObjectCreated:Put` notification; the key is URL-encoded with '+' for space, as S3 does."""
    obj: dict[str, Any] = {
        "key": quote_plus(key, safe="/"),
        "size": size,
        "eTag": etag.strip('"'),
        # S3's sequencer grows with every event on a key; the clock's nanoseconds do too.
        "sequencer": f"{time.time_ns():018X}",
    }
    if version_id:
        obj["versionId"] = version_id
    return {
        "Records": [
            {
                "eventVersion": "2.1",
                "eventSource": "aws:s3",
                "awsRegion": "us-east-1",
                "eventTime": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z",
                "eventName": "ObjectCreated:Put",
                "userIdentity": {"principalId": "AWS:AIDAEXAMPLE"},
                "requestParameters": {"sourceIPAddress": "127.0.0.1"},
                "responseElements": {"x-amz-request-id": "EXAMPLE123456789", "x-amz-id-2": "EXAMPLE/abcdefghijk"},
                "s3": {
                    "s3SchemaVersion": "1.0",
                    "configurationId": "ManifestCreated",
                    "bucket": {
                        "name": bucket,
                        "ownerIdentity": {"principalId": "EXAMPLE"},
                        "arn": f"arn:aws:s3:::{bucket}",
                    },
                    "object": obj,
                },
            }
        ]
    }


def sqs_event(bodies: list[str], queue_arn: str, group_id: str | None = None) -> dict[str, Any]:
    """An SQS event as Lambda's event source mapping delivers it (one record per body)."""
    records = []
    for index, body in enumerate(bodies):
        attributes = {
            "ApproximateReceiveCount": "1",
            "SentTimestamp": str(int(datetime.now(UTC).timestamp() * 1000)),
            "SenderId": "AIDAEXAMPLE",
            "ApproximateFirstReceiveTimestamp": str(int(datetime.now(UTC).timestamp() * 1000)),
        }
        if group_id is not None:
            attributes |= {
                "MessageGroupId": group_id,
                "MessageDeduplicationId": f"dedup-{index}",
                "SequenceNumber": str(index),
            }
        records.append(
            {
                "messageId": str(uuid.uuid4()),
                "receiptHandle": f"local-receipt-{uuid.uuid4().hex}",
                "body": body,
                "attributes": attributes,
                "messageAttributes": {},
                "md5OfBody": hashlib.md5(body.encode()).hexdigest(),  # noqa: S324 - SQS's own checksum
                "eventSource": "aws:sqs",
                "eventSourceARN": queue_arn,
                "awsRegion": queue_arn.split(":")[3],
            }
        )
    return {"Records": records}
