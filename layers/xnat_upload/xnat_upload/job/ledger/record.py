"""One job's line in the ledger: where it is, what it did so far, who asked for it.

The result manifest in S3 stays the full per-file record; this is the summary that an operator
lists and a caller polls, small enough for a DynamoDB item whatever the job's size.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, datetime
from typing import Any, Literal

from ...redaction import redact
from ...result import FileStatus, JobResult

State = Literal["queued", "running", "waiting_for_xnat", "finished"]
STATES: tuple[State, ...] = ("queued", "running", "waiting_for_xnat", "finished")
OPEN_STATES: tuple[State, ...] = ("queued", "running", "waiting_for_xnat")
ERROR_MESSAGE_MAX_CHARS = 2_000  # an item stays far below DynamoDB's 400 KB, whatever XNAT answered
_DONE = {FileStatus.UPLOADED.value, FileStatus.ALREADY_EXISTS.value}
_FAILED = {FileStatus.FAILED.value, FileStatus.REJECTED.value, FileStatus.MISSING.value}


def now_iso() -> str:
    """UTC, to the millisecond: the ledger's times sort as text."""
    return datetime.now(UTC).isoformat(timespec="milliseconds")


@dataclass(frozen=True)
class Progress:
    """Files and bytes so far: what a person watching a job cares about."""

    counts: dict[str, int] = field(default_factory=dict)
    files_total: int = 0
    files_done: int = 0
    files_failed: int = 0
    bytes_total: int = 0
    bytes_done: int = 0

    @classmethod
    def of(cls, result: JobResult) -> Progress:
        done = [f for f in result.files if f.in_place]
        return cls(
            counts=result.counts(),
            files_total=len(result.files),
            files_done=len(done),
            files_failed=sum(1 for f in result.files if f.status.value in _FAILED),
            bytes_total=sum(f.bytes or 0 for f in result.files),
            bytes_done=sum(f.bytes or 0 for f in done),
        )

    def fields(self) -> dict[str, Any]:
        return asdict(self)


def error_entry(code: str, message: str) -> dict[str, str]:
    """An error as the ledger keeps it: its code and a redacted, bounded message."""
    message = redact(message)
    if len(message) > ERROR_MESSAGE_MAX_CHARS:
        message = message[: ERROR_MESSAGE_MAX_CHARS - 1] + "…"
    return {"code": code, "message": message}


def job_error(result: JobResult) -> dict[str, str] | None:
    """The result's job-level error, as the ledger keeps it."""
    if not result.error:
        return None
    return error_entry(result.error.get("code", "error"), result.error.get("message", ""))


@dataclass
class JobRecord:
    """A ledger item. `state` says where the job is; `status` how it ended (only when finished)."""

    job_id: str
    manifest_version: str | None
    state: State = "queued"
    status: str | None = None
    mode: str = "upload"
    net_id: str | None = None
    xnat: dict[str, str] = field(default_factory=dict)  # project, session, scan, resource (the manifest's names)
    counts: dict[str, int] = field(default_factory=dict)
    files_total: int = 0
    files_done: int = 0
    files_failed: int = 0
    bytes_total: int = 0
    bytes_done: int = 0
    submitted_by: str | None = None
    submitted_at: str | None = None
    updated_at: str | None = None
    finished_at: str | None = None
    started_at: str | None = None  # when a worker first took the job (a finished job's, from its result)
    invocations: int | None = None  # worker invocations the job took (a finished job's, from its result)
    upload_mode: str | None = None  # how its files went to XNAT: zip or per_file (a finished job's)
    error: dict[str, str] | None = None
    continuation: int = 0
    attempt: int | None = None  # the delivery of the job's message now running (SQS ApproximateReceiveCount)
    lease_until: str | None = None  # when that delivery's message becomes visible again if nobody writes
    retry_at: str | None = None
    result_key: str | None = None
    manifest_seq: str = ""  # the S3 event's sequencer: versions of one manifest, in the order S3 took them
    given_up: bool = False  # ended because its message went to the dead-letter queue: a redrive reopens it
    event_sent: bool | None = None
    expires_at: int | None = None

    def progress(self) -> Progress:
        return Progress(
            self.counts, self.files_total, self.files_done, self.files_failed, self.bytes_total, self.bytes_done
        )

    def to_item(self) -> dict[str, Any]:
        """Plain values; None is left out (DynamoDB items carry no nulls worth keeping)."""
        return {name: value for name, value in asdict(self).items() if value is not None}

    @classmethod
    def from_item(cls, item: dict[str, Any]) -> JobRecord:
        known = {f.name for f in fields(cls)}
        values = {name: _plain(value) for name, value in item.items() if name in known}
        values.setdefault("manifest_version", None)
        return cls(**values)

    def summary(self) -> dict[str, Any]:
        """What GET /jobs lists for a job (and the CLI's `jobs` prints)."""
        data = self.to_item()
        for internal in ("manifest_seq", "expires_at", "event_sent", "lease_until"):
            data.pop(internal, None)
        if not self.given_up:
            data.pop("given_up", None)
        return data


def _plain(value: Any) -> Any:
    """DynamoDB numbers come back as Decimal: whole ones become int."""
    from decimal import Decimal

    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value
