"""Metrics out of the way of people at a terminal (`make demo`, `make serve`), for those local runs only.

Powertools prints each flush of EMF metrics to stdout, where Lambda sends it to CloudWatch; locally those JSON
lines bury the output that matters. POWERTOOLS_METRICS_DISABLED stops the flushes but not two things Powertools
does regardless (3.x): the ColdStart metric of `log_metrics(capture_cold_start_metric=True)`, printed by
`single_metric`, which ignores the setting, and a UserWarning for every flush with no metrics. The tests do not
call this: they read the metrics (tests/integration/test_observability.py).
"""

from __future__ import annotations

import os
import warnings

from aws_lambda_powertools.metrics.functions import is_metrics_disabled
from aws_lambda_powertools.metrics.provider import cold_start


def quiet_local_metrics() -> None:
    """Disable metrics unless the caller's environment asked for them (POWERTOOLS_METRICS_DISABLED=false)."""
    os.environ.setdefault("POWERTOOLS_METRICS_DISABLED", "true")
    if not is_metrics_disabled():
        return
    cold_start.is_cold_start = False  # the cold start counts as seen: no ColdStart line
    warnings.filterwarnings("ignore", message="No application metrics to publish", category=UserWarning)
