"""Progress of a job, published to a small S3 object: `queued`, `running` (at most every few
seconds), `waiting_for_xnat` (with when it tries again), `finished`.

The CLI's `--wait` and `status`, and `GET /jobs/{id}`, read it while the result of the current
manifest version does not exist yet. Writes are throttled, so a job costs about
`duration / interval + 1` extra S3 PUTs.

Example::

    reporter = ProgressReporter(lambda doc: store.write_progress(job_id, doc), interval=5)
    reporter.tick(result)  # after each file; publishes only when `interval` has passed
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Literal

from ..observability import logger
from ..result import FileStatus, JobResult

_DONE = {FileStatus.UPLOADED, FileStatus.ALREADY_EXISTS}
_FAILED = {FileStatus.FAILED, FileStatus.REJECTED, FileStatus.MISSING}

ProgressState = Literal["queued", "running", "waiting_for_xnat", "finished"]


def snapshot(result: JobResult, state: ProgressState = "running", **extra: Any) -> dict[str, Any]:
    """Counts a person watching the job cares about: files and bytes done out of the total."""
    done = [f for f in result.files if f.status in _DONE]
    return {
        "job_id": result.job_id,
        "manifest_version": result.manifest_version,
        "state": state,
        "files_total": len(result.files),
        "files_done": len(done),
        "files_failed": sum(1 for f in result.files if f.status in _FAILED),
        "bytes_total": sum(f.bytes or 0 for f in result.files),
        "bytes_done": sum(f.bytes or 0 for f in done),
        **extra,
        "updated_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }


class ProgressReporter:
    """Publishes `snapshot(result)` on the first tick, then at most once per `interval` seconds."""

    def __init__(
        self,
        publish: Callable[[dict[str, Any]], object],
        interval: float,
        clock: Callable[[], float] = time.monotonic,
        **extra: Any,
    ) -> None:
        """`extra`: fields added to every snapshot (the invocation's continuation number, say)."""
        self._publish = publish
        self._extra = extra
        self._interval = interval
        self._clock = clock
        self._last: float | None = None
        self._lock = threading.Lock()
        self.published = 0

    def tick(self, result: JobResult) -> None:
        with self._lock:
            now = self._clock()
            if self._last is not None and now - self._last < self._interval:
                return
            self._last = now
        try:
            self._publish(snapshot(result, "running", **self._extra))
            self.published += 1
        except Exception:  # progress is a courtesy: it never fails the job
            logger.warning("could not publish progress", exc_info=True)
