"""The fault table's program runs as `make faults` runs it, so the README's table can always be reproduced.

Only a smoke run: two scenarios with a few files. The scenarios themselves are specified, with their
assertions, in test_faults.py, test_deadline.py and test_secrets_in_logs.py; timings are never asserted.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.processes import popen, stop

ROOT = Path(__file__).resolve().parents[2]


def test_bench_faults_prints_its_table_and_exits_zero_when_nothing_is_lost() -> None:
    process = popen(
        [sys.executable, "-m", "bench.faults", "--files", "6", "--only", "echo"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        out, err = process.communicate(timeout=120)
    finally:
        stop(process)

    assert process.returncode == 0, err[-2000:]
    header, _, row = out.strip().splitlines()
    assert "lost" in header and "longest invocation / timeout" in header and "secrets" in header
    cells = dict(zip([c.strip() for c in header.split("|")], [c.strip() for c in row.split("|")], strict=True))
    assert cells["fault"] == "error pages echo the request (Authorization, cookies)"
    assert cells["lost"] == cells["lost after"] == cells["secrets"] == "0"
    assert cells["after re-run"] == "succeeded, 6/6 in XNAT"
