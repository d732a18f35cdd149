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


# -- a server that trickles bytes: every socket operation progresses, so no socket timeout fires --


def invoke_with_deadline(stack: LocalStack, job_id: str, paths: list[str], seconds: float) -> tuple[dict, float]:
    event = stack.put_manifest(job_id, make_manifest(files_relative_paths_to_upload=paths))
    started = time.monotonic()
    stack.invoke_trigger(event, timeout_seconds=seconds)
    elapsed = time.monotonic() - started
    result = stack.read_result(job_id)
    assert result is not None, "the result is written before the deadline"
    return result, elapsed


@pytest.fixture
def short_budget(stack: LocalStack, monkeypatch: pytest.MonkeyPatch) -> LocalStack:
    monkeypatch.setenv("UPLOAD_MODE", "per_file")
    monkeypatch.setenv("XNAT_READ_TIMEOUT", "120")
    monkeypatch.setenv("TIME_BUDGET_MARGIN_SECONDS", "3")  # XNAT calls end 1.5 s before the deadline
    return stack


def test_a_listing_trickled_at_a_few_bytes_a_second_is_cut_at_the_deadline(short_budget: LocalStack) -> None:
    stack = short_budget
    stack.put_image("net-1", "a.nii", b"a" * 1000)
    stack.xnat.trickle_response_next(5, method="GET", path_contains="/files")  # ~70 s for the whole answer

    result, elapsed = invoke_with_deadline(stack, "trickled-listing", ["a.nii"], seconds=6)

    assert elapsed < 6, f"the handler returned after {elapsed:.1f} s, past its 6 s deadline"
    assert result["status"] == "partial"
    assert result["error"]["code"] == "time_budget_exceeded"
    assert "cut at the deadline" in result["error"]["message"]
    assert [f["status"] for f in result["files"]] == ["pending"]
    assert stack.xnat.count("PUT", "/files/") == 0


def test_a_put_that_xnat_reads_slowly_is_cut_at_the_deadline_and_the_file_stays_pending(
    short_budget: LocalStack,
) -> None:
    stack = short_budget
    size = 6 * 1024 * 1024  # more than loopback's socket buffers (~4 MiB) hold: the sends themselves crawl
    stack.put_image("net-1", "big.nii", b"b" * size)
    stack.put_image("net-1", "small.nii", b"s" * 1000)
    stack.xnat.read_body_slowly_next(512 * 1024, method="PUT", path_contains="/files/big.nii")  # 12 s

    result, elapsed = invoke_with_deadline(stack, "slow-put", ["big.nii", "small.nii"], seconds=6)

    assert elapsed < 6, f"the handler returned after {elapsed:.1f} s, past its 6 s deadline"
    assert result["error"]["code"] == "time_budget_exceeded"
    assert [f["status"] for f in result["files"]] == ["pending", "pending"]
    assert all("re-put the manifest" in f["error"] for f in result["files"])
    assert stack.xnat.get_file(DEMO_PROJECT, DEMO_ACCESSION, "1", "NIFTI", "big.nii") is None
