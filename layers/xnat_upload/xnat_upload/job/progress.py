"""A running job's counts, published at most every few seconds (into the jobs ledger).

Progress is a courtesy: a failed publication is logged and never fails the job. Writes are
throttled, so a job costs about `duration / interval` extra ledger writes.

Example::

    reporter = ProgressReporter(lambda result: ledger.update(..., **Progress.of(result).fields()), interval=5)
    reporter.tick(result)  # after each file; publishes only when `interval` has passed
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from ..observability import logger
from ..result import JobResult


class ProgressReporter:
    """Publishes the result at most once per `interval` seconds, the first time `interval` after it
    was made: the job's start was just written (`running`, nothing done), and a job that ends
    sooner writes its counts with its end; a tick before then would carry nothing new."""

    def __init__(
        self,
        publish: Callable[[JobResult], object],
        interval: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._publish = publish
        self._interval = interval
        self._clock = clock
        self._last = clock()
        self._lock = threading.Lock()
        self.published = 0

    def tick(self, result: JobResult) -> None:
        with self._lock:
            now = self._clock()
            if now - self._last < self._interval:
                return
            self._last = now
        try:
            self._publish(result)
            self.published += 1
        except Exception:  # progress is a courtesy: it never fails the job
            logger.warning("could not publish progress", exc_info=True)
