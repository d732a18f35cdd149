"""No XNAT call outlives the Lambda's deadline: the result is always written before it."""

from __future__ import annotations

import time

import pytest

from devserver.stack import DEMO_ACCESSION, DEMO_PROJECT, LocalStack

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


def test_a_hanging_xnat_call_is_cut_short_and_the_result_written_in_time(slow_xnat: LocalStack) -> None:
    event = slow_xnat.put_manifest("deadline", make_manifest(files_relative_paths_to_upload=PATHS))

    started = time.monotonic()
    slow_xnat.invoke_trigger(event, timeout_seconds=6)
    elapsed = time.monotonic() - started

    assert elapsed < 6, f"the handler returned after {elapsed:.1f} s, past its 6 s deadline"
    result = slow_xnat.read_result("deadline")
    statuses = {f["path"]: f["status"] for f in result["files"]}
    assert statuses["b.nii"] in ("failed", "pending")
    assert statuses["c.nii"] == "pending"
    assert result["status"] == "partial"
    assert "c.nii" not in slow_xnat.xnat.list_files(DEMO_PROJECT, DEMO_ACCESSION, "1", "NIFTI")
