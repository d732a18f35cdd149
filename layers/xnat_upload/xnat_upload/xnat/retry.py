"""When to retry a transient failure: within a time window, full-jitter backoff, never past the deadline.

A count of retries says little about time: five quick attempts are over in a few seconds, while
an XNAT restarting behind a proxy answers 503 for tens of seconds. So a call is retried for up to
`window_seconds` after its first attempt, however many attempts that takes (`max_retries`, when
set, caps the count too), and never when the pause would end past the time budget.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from ..config import DEFAULT_RETRY_WINDOW_SECONDS


@dataclass
class RetryPolicy:
    """How long and how often to retry one call.

    Example::

        policy = RetryPolicy(window_seconds=60, base_delay=0.5)
        started, tries = policy.clock(), 0
        while not done():
            ...  # one attempt
            if not policy.wait(tries, started):  # False: window, count or time budget spent
                break
            tries += 1
    """

    max_retries: int | None = None
    base_delay: float = 0.5
    max_delay: float = 20.0
    window_seconds: float = DEFAULT_RETRY_WINDOW_SECONDS
    sleep: Callable[[float], None] = time.sleep
    random: Callable[[], float] = field(default=random.random)
    clock: Callable[[], float] = time.monotonic
    remaining_seconds: Callable[[], float] | None = None

    def delay(self, attempt: int) -> float:
        """Full jitter: spreads retries of parallel workers so they do not collide again."""
        ceiling = min(self.max_delay, self.base_delay * (2 ** min(attempt, 32)))
        return ceiling * self.random()

    def pause_before(self, attempt: int, started: float, reserve: float = 0.0) -> float | None:
        """The pause before retry number `attempt` (0-based) of a call first tried at `started`
        (`clock()` time), or None when the count, the window or the time budget rules it out.

        The pause is cut to end with the window, so the last retry happens at its end at the
        latest; it must end `reserve` seconds before the time budget runs out.
        """
        if self.max_retries is not None and attempt >= self.max_retries:
            return None
        window_left = started + self.window_seconds - self.clock()
        if window_left <= 0:
            return None
        pause = min(self.delay(attempt), window_left)
        if self.remaining_seconds is not None and self.remaining_seconds() - reserve <= pause:
            return None
        return pause

    def wait(self, attempt: int, started: float, reserve: float = 0.0) -> bool:
        """Sleep before retry number `attempt`; False when no retry is allowed."""
        pause = self.pause_before(attempt, started, reserve)
        if pause is None:
            return False
        self.sleep(pause)
        return True
