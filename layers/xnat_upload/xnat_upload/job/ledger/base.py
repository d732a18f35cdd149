"""What every ledger backend does: the writers and readers code against this, not DynamoDB."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Protocol

from .record import JobRecord


class Ledger(Protocol):
    def open(self, record: JobRecord) -> bool:
        """A new manifest version takes the job's item; False when it is known or older."""

    def update(self, job_id: str, version: str | None, continuation: int, **changes: Any) -> None:
        """Move a running job; raises StaleWriteError when the writer is stale."""

    def finish(self, job_id: str, version: str | None, continuation: int, **changes: Any) -> JobRecord | None:
        """End the job; the item as written for the one writer that ended it, else None."""

    def give_up(self, seen: JobRecord, **changes: Any) -> JobRecord | None:
        """End a job nobody works on, if it is still as seen; the item as written, else None."""

    def mark_event_sent(self, job_id: str, version: str | None, finished_at: str | None) -> None: ...

    def get(self, job_id: str) -> JobRecord | None: ...

    def list_jobs(
        self,
        *,
        status: str | None = None,
        state: str | None = None,
        since: str | None = None,
        limit: int = 50,
        next_token: str | None = None,
        net_id: str | None = None,
    ) -> tuple[list[JobRecord], str | None]: ...

    def open_jobs_quiet_since(self, cutoff: str) -> Iterator[JobRecord]: ...

    def finished_without_event(self, after: str, before: str) -> Iterator[JobRecord]: ...
