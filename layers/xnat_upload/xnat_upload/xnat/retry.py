"""Bounded exponential backoff with full jitter, and a deadline it never sleeps past."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class RetryPolicy:
    """How often and how long to wait between attempts of a retryable call.

    Example::

        policy = RetryPolicy(max_retries=4, base_delay=0.5)
        tries = 0
        while not done():
            ...  # one attempt
            if not policy.wait(tries):  # False: out of retries or of time
                break
            tries += 1
    """

    max_retries: int = 4
    base_delay: float = 0.5
    max_delay: float = 20.0
    sleep: Callable[[float], None] = time.sleep
    random: Callable[[], float] = field(default=random.random)
    remaining_seconds: Callable[[], float] | None = None

    def delay(self, attempt: int) -> float:
        """Full jitter: spreads retries of parallel workers so they do not collide again."""
        ceiling = min(self.max_delay, self.base_delay * (2**attempt))
        return ceiling * self.random()

    def wait(self, attempt: int) -> bool:
        """Sleep before retry number `attempt` (0-based); False when retries or time ran out."""
        if attempt >= self.max_retries:
            return False
        pause = self.delay(attempt)
        if self.remaining_seconds is not None and self.remaining_seconds() <= pause:
            return False
        self.sleep(pause)
        return True
