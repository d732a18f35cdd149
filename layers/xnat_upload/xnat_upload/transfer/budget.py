"""How much work fits in the time an invocation has left, from the rate actually measured.

A unit of work (one zip batch, one big file) must fit in one invocation, or a job that continues
itself never makes progress. So:

* before any transfer has been measured, the first batch is sized for the slowest XNAT planned for
  (`FIRST_BATCH_RATE` over the time left, at least `PROBE_BYTES`): it measures the rate, and the
  deadline of every XNAT call guards it. An even slower XNAT costs that one invocation; from then on
  batches follow the measured rate;
* afterwards a unit starts only when its size fits the time left at the measured rate, and zip
  batches are sized to fit;
* a single file that would not fit even in a whole invocation at the measured rate is reported as
  too large instead of being tried again and again.

The throughput is carried from invocation to invocation in the job's checkpoint.

Example::

    budget = TimeBudget(remaining_seconds, margin_seconds=20, throughput=Throughput(), invocation_seconds=900)
    if budget.allows(size):
        ...  # transfer, then:
        budget.record(size, elapsed)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

PROBE_BYTES = 8 * 1024 * 1024  # the first batch of a job measures the rate: at least this much
FIRST_BATCH_RATE = 1024 * 1024  # bytes/s: the slowest XNAT the first, unmeasured batch is sized for
MIN_MEASURED_SECONDS = 0.05  # shorter samples say more about latency than about throughput
MIN_MEASURED_BYTES = 1024 * 1024  # so do a few small files: a rate from less is latency, not bandwidth
SHARE_OF_TIME_LEFT = 0.8  # a unit may use this share of the time left: leave room for the answer and verification
SHARE_OF_INVOCATION = 0.5  # and at most this share of a whole invocation, so a continuation always gets work done


@dataclass
class Throughput:
    """Bytes moved and seconds spent moving them, summed over the job's transfers."""

    bytes: int = 0
    seconds: float = 0.0

    @property
    def rate(self) -> float | None:
        """Bytes per second, once something worth measuring has been sent."""
        if self.seconds < MIN_MEASURED_SECONDS or self.bytes < MIN_MEASURED_BYTES:
            return None
        return self.bytes / self.seconds

    def record(self, size: int, seconds: float) -> None:
        self.bytes += max(0, size)
        self.seconds += max(0.0, seconds)


class TimeBudget:
    """Answers "may this unit start now?" and "how big may the next batch be?"."""

    def __init__(
        self,
        remaining_seconds: Callable[[], float] | None,
        margin_seconds: float,
        throughput: Throughput | None = None,
        invocation_seconds: float | None = None,
    ) -> None:
        self._remaining = remaining_seconds
        self._margin = margin_seconds
        self.throughput = throughput or Throughput()
        # The whole time an invocation has for transfers: a unit longer than this never fits.
        self._invocation = None if invocation_seconds is None else max(0.0, invocation_seconds - margin_seconds)

    def _time_left(self) -> float | None:
        return None if self._remaining is None else self._remaining() - self._margin

    def allows(self, size: int) -> bool:
        """True when a transfer of `size` bytes fits the time left at the measured rate. Unmeasured,
        any transfer may start while time is left: its calls carry the deadline."""
        left = self._time_left()
        if left is None:
            return True
        if left <= 0:
            return False
        rate = self.throughput.rate
        return rate is None or size / rate <= left

    def never_fits(self, size: int) -> bool:
        """A single unit this large could not finish even in a fresh invocation at the measured rate."""
        rate = self.throughput.rate
        return rate is not None and self._invocation is not None and size / rate > self._invocation

    def batch_bytes(self, configured_max: int) -> int:
        """The largest batch to start now: the configured bound, cut to what the time allows."""
        rate = self.throughput.rate
        if rate is None:
            left = self._time_left()
            if left is None:
                return configured_max
            first = max(PROBE_BYTES, int(FIRST_BATCH_RATE * max(0.0, left) * SHARE_OF_INVOCATION))
            return min(configured_max, first)
        limits = [configured_max]
        left = self._time_left()
        if left is not None:
            limits.append(int(rate * max(0.0, left) * SHARE_OF_TIME_LEFT))
        if self._invocation is not None:
            limits.append(int(rate * self._invocation * SHARE_OF_INVOCATION))
        return max(0, min(limits))

    def record(self, size: int, seconds: float) -> None:
        self.throughput.record(size, seconds)
