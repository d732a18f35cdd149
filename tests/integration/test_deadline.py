"""No XNAT call outlives the worker's deadline: every invocation ends in time, with its state written."""

from __future__ import annotations

import time

import pytest

from devserver.stack import LocalStack

from .conftest import make_manifest

PATHS = ["a.nii", "b.nii", "c.nii"]


@pytest.fixture
def slow_xnat(stack: LocalStack, monkeypatch: pytest.MonkeyPatch) -> LocalStack:
    monkeypatch.setenv("UPLOAD_MODE", "per_file")
    monkeypatch.setenv("XNAT_READ_TIMEOUT", "120")  # far longer than the invocation has
    monkeypatch.setenv("TIME_BUDGET_MARGIN_SECONDS", "2")
    for path in PATHS:
        stack.put_image("net-1", path, path.encode())
    stack.xnat.set_delay(30, method="PUT", path_contains="/files/b.nii")  # answers long after the deadline
    return stack


def test_a_hanging_xnat_call_is_cut_short_and_the_invocation_ends_in_time(slow_xnat: LocalStack) -> None:
    stack = slow_xnat
    assert stack.worker is not None and stack.intake is not None
    stack.worker.function_timeout = 6
    stack.put_manifest("deadline", make_manifest(files_relative_paths_to_upload=PATHS))
    stack.intake.poll_once()

    started = time.monotonic()
    stack.worker.poll_once()
    elapsed = time.monotonic() - started

    assert elapsed < 6, f"the invocation returned after {elapsed:.1f} s, past its 6 s deadline"
    assert stack.worker.stats.overruns == stack.worker.stats.errors == 0
    if stack.read_result("deadline") is None:  # not finished: it continues itself, nothing is lost
        assert stack.queue_depth("jobs") == 1
        assert stack.read_progress("deadline")["state"] == "running"

    stack.xnat.set_delay(0, method="PUT", path_contains="/files/b.nii")
    stack.drain()
    result = stack.read_result("deadline")
    statuses = {f["path"]: f["status"] for f in result["files"]}
    assert statuses["a.nii"] == statuses["c.nii"] == "uploaded"
    assert statuses["b.nii"] in ("uploaded", "failed"), "cut short: sent again later, or failed with its reason"
    assert stack.worker.stats.overruns == 0
