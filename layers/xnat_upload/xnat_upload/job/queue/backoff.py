"""How long a job waits before trying an unavailable XNAT again: doubling per delivery, capped."""

from __future__ import annotations

import random
from collections.abc import Callable


def redelivery_delay(
    receive_count: int, base_seconds: float, max_seconds: float, jitter: Callable[[], float] = random.random
) -> int:
    """Seconds before the next delivery after the `receive_count`-th one failed on XNAT.

    `base * 2^(n-1)`, at most `max_seconds`, plus up to 10 % jitter so that the jobs of many
    resources waiting on one XNAT do not all come back in the same second.

    Example::

        redelivery_delay(1, 60, 3600)  # ~60-66 s; the 7th delivery waits ~3600-3960 s
    """
    exponent = max(0, receive_count - 1)
    delay = min(max_seconds, base_seconds * (2 ** min(exponent, 30)))
    return max(0, round(delay * (1 + 0.1 * jitter())))
