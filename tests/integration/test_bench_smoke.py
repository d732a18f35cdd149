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


def test_bench_queue_prints_the_whole_flow_beside_the_worker_alone_figure() -> None:
    """A smoke run of `make bench`'s floor section with a few files: every party runs and every job
    it times succeeds with the seeded bytes (the bench checks both, and raises otherwise). Whether a
    target is met is the bench's business on a quiet machine, never this test's."""
    process = popen(
        [
            sys.executable,
            "-m",
            "bench.queue",
            "--only",
            "floor",
            "--floor-files",
            "6",
            "--floor-repeat",
            "1",
            "--flow-large-files",
            "8",
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        out, err = process.communicate(timeout=600)
    finally:
        stop(process)

    assert "Traceback" not in err, err[-4000:]
    assert process.returncode in (0, 1), err[-2000:]  # 1: a target missed, which a smoke run does not judge
    labels = [line.split("  ")[0] for line in out.splitlines()]
    for label in (
        "floor: service (worker handler), 6 x 64 KiB",
        "flow: service, S3 event -> result (intake + worker), 6 x 64 KiB",
        "flow: of which the intake handler",
        "flow: floor (extraction almost free)",
        "flow: service / floor",
        "flow: speed-up service / seed-like",
        "flow: service / floor, 8 x 64 KiB",
    ):
        assert label in labels, out
    assert "PROBLEM" not in out
