"""The ledger on DynamoDB: one item per job, every write conditional on the manifest version.

A writer never reads first and writes after: the condition travels with the write, so a stale
writer (an older manifest version's worker, a late continuation, a duplicate intake event) fails
atomically and moves nothing back. The table is defined once, in template.yaml (`JobsTable`).
"""

from __future__ import annotations

import base64
import binascii
import json
import time
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.exceptions import ClientError

from ...exceptions import InvalidRequestError
from .exceptions import StaleWriteError
from .record import OPEN_STATES, JobRecord, now_iso

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

KIND = "job"  # every item's `kind`: the partition of the index that lists all jobs by submission time
INDEX_ALL = "by-kind"  # kind, submitted_at
INDEX_STATUS = "by-status"  # status, submitted_at (only finished jobs have a status)
INDEX_STATE = "by-state"  # state, updated_at (the sweeper's view: what has not moved for a while)
MAX_PAGES_PER_LIST = 10  # a filtered listing reads at most this many pages per call, then hands a token on
_TOKEN_KEYS = {"job_id", "kind", "status", "state", "submitted_at", "updated_at"}
_CLEARED_WHEN_REOPENED = ("status", "finished_at", "error", "retry_at", "given_up", "event_sent")

_BAD_TOKEN = "`next` is not a page token of this listing: pass the one the last page gave"
_serializer = TypeSerializer()
_deserializer = TypeDeserializer()


def _dynamo(value: Any) -> dict[str, Any]:
    return _serializer.serialize(value)


def _plain_item(item: Mapping[str, Any]) -> dict[str, Any]:
    return {name: _deserializer.deserialize(value) for name, value in item.items()}


class _Expression:
    """Builds an expression's placeholders: every attribute name is aliased (`state`, `status` and
    `mode` are DynamoDB reserved words), every value bound."""

    def __init__(self) -> None:
        self.names: dict[str, str] = {}
        self.values: dict[str, Any] = {}

    def name(self, attribute: str) -> str:
        alias = f"#{attribute}"
        self.names[alias] = attribute
        return alias

    def value(self, value: Any) -> str:
        alias = f":v{len(self.values)}"
        self.values[alias] = _dynamo(value)
        return alias

    def arguments(self) -> dict[str, Any]:
        arguments: dict[str, Any] = {}
        if self.names:
            arguments["ExpressionAttributeNames"] = self.names
        if self.values:
            arguments["ExpressionAttributeValues"] = self.values
        return arguments


class DynamoDBLedger:
    """Example::

    ledger = DynamoDBLedger(boto3.client("dynamodb"), "xnat-upload-jobs")
    ledger.open(JobRecord("ab12", "v1", submitted_by="arn:aws:iam::1:user/pipeline"))
    ledger.update("ab12", "v1", 0, state="running", files_done=3)
    ledger.get("ab12").state  # "running"
    """

    def __init__(self, client: DynamoDBClient, table: str, retention_days: int = 365) -> None:
        self._client = client
        self.table = table
        self._retention_seconds = retention_days * 86_400

    # -- writes ----------------------------------------------------------------------------------

    def open(self, record: JobRecord) -> bool:
        """A new manifest version takes the job's item (queued, or finished at once when the intake
        refused it). False, and nothing written, when this version is known already (a duplicate
        event) or a version S3 took later holds the item (by the S3 event's sequencer)."""
        now = now_iso()
        record.submitted_at = record.submitted_at or now
        record.updated_at = now
        item = {**record.to_item(), "manifest_version": record.manifest_version or "", "kind": KIND,
                "expires_at": self._expiry()}  # fmt: skip
        if record.state == "finished":
            item["event_sent"] = False
        expression = _Expression()
        version, seq = expression.name("manifest_version"), expression.name("manifest_seq")
        condition = (
            f"attribute_not_exists({expression.name('job_id')}) OR ((attribute_not_exists({version}) OR "
            f"{version} <> {expression.value(record.manifest_version or '')}) AND "
            f"(attribute_not_exists({seq}) OR {seq} <= {expression.value(record.manifest_seq)}))"
        )
        try:
            self._client.put_item(
                TableName=self.table,
                Item={name: _dynamo(value) for name, value in item.items()},
                ConditionExpression=condition,
                **expression.arguments(),
            )
        except ClientError as exc:
            if _condition_failed(exc):
                return False
            raise
        return True

    def update(self, job_id: str, version: str | None, continuation: int, **changes: Any) -> None:
        """A running job's writer (its worker) records where the job is. Raises `StaleWriteError` when
        the item belongs to another manifest version, a later continuation, or a job that ended
        (a job given up, its message in the dead-letter queue, is reopened by its redriven message)."""
        if self._write(job_id, version, continuation, changes, returned=False) is None:
            raise StaleWriteError(f"job {job_id!r}: version {version!r}, continuation {continuation} is stale")

    def finish(self, job_id: str, version: str | None, continuation: int, **changes: Any) -> JobRecord | None:
        """End the job (state finished). The item as written for the one writer that ended it (who then
        announces it); None for any other (stale, or the job had ended already)."""
        changes = {**changes, "state": "finished", "event_sent": False}
        changes.setdefault("finished_at", now_iso())
        return self._write(job_id, version, continuation, changes)

    def give_up(self, seen: JobRecord, **changes: Any) -> JobRecord | None:
        """The sweeper ends a job that nobody works on any more, only if the item is still exactly as
        it saw it (no worker wrote since): the item as written, or None when a worker was quicker."""
        changes = {**changes, "state": "finished", "given_up": True, "event_sent": False}
        changes.setdefault("finished_at", now_iso())
        expression = _Expression()
        condition = (
            f"{expression.name('manifest_version')} = {expression.value(seen.manifest_version or '')} AND "
            f"{expression.name('state')} = {expression.value(seen.state)} AND "
            f"{expression.name('updated_at')} = {expression.value(seen.updated_at or '')}"
        )
        return self._update(seen.job_id, changes, (), condition, expression)

    def mark_event_sent(self, job_id: str, version: str | None, finished_at: str | None) -> None:
        """Note that the end of `finished_at` was announced (not a later end of the same job, after a redrive)."""
        expression = _Expression()
        condition = (
            f"{expression.name('manifest_version')} = {expression.value(version or '')} AND "
            f"{expression.name('finished_at')} = {expression.value(finished_at or '')}"
        )
        self._update(job_id, {"event_sent": True}, (), condition, expression, touch=False, returned=False)

    def _write(
        self, job_id: str, version: str | None, continuation: int, changes: dict[str, Any], returned: bool = True
    ) -> JobRecord | None:
        expression = _Expression()
        state = expression.name("state")
        level = expression.name("continuation")
        condition = (
            f"attribute_not_exists({expression.name('job_id')}) OR "
            f"({expression.name('manifest_version')} = {expression.value(version or '')} AND "
            f"(attribute_not_exists({level}) OR {level} <= {expression.value(continuation)}) AND "
            f"({state} <> {expression.value('finished')} OR {expression.name('given_up')} = {expression.value(True)}))"
        )
        changes = {"manifest_version": version or "", "continuation": continuation, **changes}
        reopened = changes.get("state") in OPEN_STATES
        removed = _CLEARED_WHEN_REOPENED if reopened else ()
        return self._update(job_id, changes, removed, condition, expression, returned=returned)

    def _update(
        self,
        job_id: str,
        changes: dict[str, Any],
        removed: tuple[str, ...],
        condition: str,
        expression: _Expression,
        touch: bool = True,
        returned: bool = True,
    ) -> JobRecord | None:
        # A change to None removes the attribute (a finished job has no error; a continued one, no lease yet).
        removed = tuple(dict.fromkeys([*removed, *(name for name, value in changes.items() if value is None)]))
        changes = {name: value for name, value in changes.items() if value is not None}
        if touch:
            changes = {**changes, "updated_at": now_iso(), "kind": KIND, "expires_at": self._expiry()}
        assignments = [f"{expression.name(name)} = {expression.value(value)}" for name, value in changes.items()]
        if touch:  # an item a writer creates (the ledger was added after the job was queued) is listed too
            submitted = expression.name("submitted_at")
            assignments.append(f"{submitted} = if_not_exists({submitted}, {expression.value(now_iso())})")
        update = "SET " + ", ".join(assignments)
        removed = tuple(name for name in removed if name not in changes)
        if removed:
            update += " REMOVE " + ", ".join(expression.name(name) for name in removed)
        try:
            written = self._client.update_item(
                TableName=self.table,
                Key={"job_id": _dynamo(job_id)},
                UpdateExpression=update,
                ConditionExpression=condition,
                ReturnValues="ALL_NEW" if returned else "NONE",
                **expression.arguments(),
            )
        except ClientError as exc:
            if _condition_failed(exc):
                return None
            raise
        if not returned:
            return JobRecord(job_id, None)  # written; the caller does not need the item
        return JobRecord.from_item(_plain_item(written["Attributes"]))

    def _expiry(self) -> int:
        """TTL: an item is kept `retention_days` after its last write (LEDGER_RETENTION_DAYS)."""
        return int(time.time()) + self._retention_seconds

    # -- reads -----------------------------------------------------------------------------------

    def get(self, job_id: str) -> JobRecord | None:
        item = self._client.get_item(TableName=self.table, Key={"job_id": _dynamo(job_id)}, ConsistentRead=True)
        return JobRecord.from_item(_plain_item(item["Item"])) if "Item" in item else None

    def list_jobs(
        self,
        *,
        status: str | None = None,
        state: str | None = None,
        since: str | None = None,
        limit: int = 50,
        next_token: str | None = None,
        net_id: str | None = None,
    ) -> tuple[list[JobRecord], str | None]:
        """Jobs newest first (by submission), filtered (`net_id`: one net's jobs only); `next_token`
        pages on (None on the last page)."""
        expression = _Expression()
        if status is not None:
            index = INDEX_STATUS
            key = f"{expression.name('status')} = {expression.value(status)}"
        else:
            index = INDEX_ALL
            key = f"{expression.name('kind')} = {expression.value(KIND)}"
        if since is not None:
            key += f" AND {expression.name('submitted_at')} >= {expression.value(since)}"
        arguments: dict[str, Any] = {"KeyConditionExpression": key}
        filters = [(name, value) for name, value in (("state", state), ("net_id", net_id)) if value is not None]
        if filters:
            arguments["FilterExpression"] = " AND ".join(
                f"{expression.name(name)} = {expression.value(value)}" for name, value in filters
            )
        start = _decode_token(next_token, index) if next_token else None
        try:
            records, last = self._query(index, arguments, expression, max(1, min(limit, 1000)), start, forward=False)
        except ClientError as exc:  # a token of another listing (its key outside this one's condition)
            if start is not None and exc.response.get("Error", {}).get("Code") == "ValidationException":
                raise InvalidRequestError(_BAD_TOKEN) from None
            raise
        return records, _encode_token(index, last) if last else None

    def open_jobs_quiet_since(self, cutoff: str) -> Iterator[JobRecord]:
        """Jobs not finished and not written since `cutoff`: the sweeper's candidates."""
        for state in OPEN_STATES:
            yield from self._by_state(state, before=cutoff)

    def finished_without_event(self, after: str, before: str) -> Iterator[JobRecord]:
        """Jobs that ended between `after` and `before` whose event was not put (the writer was killed)."""
        for record in self._by_state("finished", after=after, before=before):
            if record.event_sent is False:
                yield record

    def _by_state(self, state: str, *, after: str | None = None, before: str) -> Iterator[JobRecord]:
        expression = _Expression()
        key = f"{expression.name('state')} = {expression.value(state)} AND "
        updated = expression.name("updated_at")
        if after is not None:
            key += f"{updated} BETWEEN {expression.value(after)} AND {expression.value(before)}"
        else:
            key += f"{updated} < {expression.value(before)}"
        start = None
        while True:
            records, start = self._query(INDEX_STATE, {"KeyConditionExpression": key}, expression, 100, start, True)
            yield from records
            if start is None:
                return

    def _query(
        self,
        index: str,
        arguments: dict[str, Any],
        expression: _Expression,
        limit: int,
        start: dict[str, Any] | None,
        forward: bool,
    ) -> tuple[list[JobRecord], dict[str, Any] | None]:
        """Up to `limit` items; reads page after page while a filter leaves them short (at most
        MAX_PAGES_PER_LIST), each page asking only for what is still missing, so the key it stops
        at is exactly where the next call goes on."""
        records: list[JobRecord] = []
        for _ in range(MAX_PAGES_PER_LIST):
            page = self._client.query(
                TableName=self.table,
                IndexName=index,
                ScanIndexForward=forward,
                Limit=limit - len(records),
                **({"ExclusiveStartKey": start} if start else {}),
                **arguments,
                **expression.arguments(),
            )
            records.extend(JobRecord.from_item(_plain_item(item)) for item in page.get("Items", []))
            start = page.get("LastEvaluatedKey")
            if start is None or len(records) >= limit:
                break
        return records, start


def _condition_failed(exc: ClientError) -> bool:
    return exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException"


def _encode_token(index: str, key: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps({"i": index, "k": key}, separators=(",", ":")).encode()).decode()


def _decode_token(token: str, index: str) -> dict[str, Any]:
    """A page token handed out by `list_jobs` for the same filter; anything else is the caller's error."""
    try:
        document = json.loads(base64.urlsafe_b64decode(token.encode()))
        key = document["k"]
        valid = (
            document["i"] == index
            and isinstance(key, dict)
            and set(key) <= _TOKEN_KEYS
            and all(isinstance(v, dict) and set(v) == {"S"} and isinstance(v["S"], str) for v in key.values())
        )
    except (ValueError, TypeError, KeyError, binascii.Error):
        valid = False
    if not valid:
        raise InvalidRequestError(_BAD_TOKEN)
    return key
