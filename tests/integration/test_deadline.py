"""No XNAT call outlives the worker's deadline: every invocation ends in time, with its state written."""

from __future__ import annotations

import gzip
import json
import time
from collections.abc import Iterator

import pytest

from devserver.stack import DEMO_ACCESSION, DEMO_PROJECT, LocalStack
from xnat_upload.aws import s3_client

from .conftest import make_manifest
from .trickle_proxy import TrickleProxy

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
        assert stack.read_job("deadline")["state"] == "running"

    stack.xnat.set_delay(0, method="PUT", path_contains="/files/b.nii")
    stack.drain()
    result = stack.read_result("deadline")
    statuses = {f["path"]: f["status"] for f in result["files"]}
    assert statuses["a.nii"] == statuses["c.nii"] == "uploaded"
    assert statuses["b.nii"] in ("uploaded", "failed"), "cut short: sent again later, or failed with its reason"
    assert stack.worker.stats.overruns == 0


# -- a server that trickles bytes: every socket operation progresses, so no socket timeout fires --


def invoke_with_deadline(stack: LocalStack, job_id: str, paths: list[str], seconds: float) -> float:
    """Queue the job, then one worker invocation with a `seconds` timeout; returns how long it took."""
    assert stack.worker is not None and stack.intake is not None
    stack.worker.function_timeout = seconds
    stack.put_manifest(job_id, make_manifest(files_relative_paths_to_upload=paths))
    stack.intake.poll_once()
    started = time.monotonic()
    stack.worker.poll_once()
    return time.monotonic() - started


def checkpointed_files(stack: LocalStack, job_id: str) -> list[dict]:
    """What the invocation handed to the next one (its checkpoint): every file's state."""
    body = stack.s3().get_object(Bucket=stack.bucket, Key=f"results/.checkpoints/{job_id}.json.gz")["Body"].read()
    return json.loads(gzip.decompress(body))["files"]


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

    elapsed = invoke_with_deadline(stack, "trickled-listing", ["a.nii"], seconds=6)

    assert elapsed < 6, f"the invocation returned after {elapsed:.1f} s, past its 6 s deadline"
    assert [f["status"] for f in checkpointed_files(stack, "trickled-listing")] == ["pending"]
    assert stack.xnat.count("PUT", "/files/") == 0
    assert stack.queue_depth("jobs") == 1, "the job continues itself"
    stack.drain()
    assert stack.read_result("trickled-listing")["status"] == "succeeded"


def test_a_put_that_xnat_reads_slowly_is_cut_at_the_deadline_and_the_file_stays_pending(
    short_budget: LocalStack,
) -> None:
    stack = short_budget
    size = 6 * 1024 * 1024  # more than loopback's socket buffers (~4 MiB) hold: the sends themselves crawl
    stack.put_image("net-1", "big.nii", b"b" * size)
    stack.put_image("net-1", "small.nii", b"s" * 1000)
    stack.xnat.read_body_slowly_next(512 * 1024, method="PUT", path_contains="/files/big.nii")  # 12 s

    elapsed = invoke_with_deadline(stack, "slow-put", ["big.nii", "small.nii"], seconds=6)

    assert elapsed < 6, f"the invocation returned after {elapsed:.1f} s, past its 6 s deadline"
    assert [f["status"] for f in checkpointed_files(stack, "slow-put")] == ["pending", "pending"]
    assert stack.xnat.get_file(DEMO_PROJECT, DEMO_ACCESSION, "1", "NIFTI", "big.nii") is None
    assert stack.worker is not None
    stack.worker.function_timeout = 60
    stack.drain()
    result = stack.read_result("slow-put")
    assert result["status"] == "succeeded", "cut short once, then sent in full by the continuation"
    assert stack.xnat.get_file(DEMO_PROJECT, DEMO_ACCESSION, "1", "NIFTI", "big.nii") == b"b" * size


# -- S3 trickling: the S3 side of a transfer is cut at the same deadline ------------------------------


@pytest.fixture
def slow_s3(stack: LocalStack, monkeypatch: pytest.MonkeyPatch) -> Iterator[TrickleProxy]:
    """The functions' S3 client behind a proxy that sends the answer to GETs of `slow*` images at
    2 KB/s (for 25 s at most, so that nothing outlives the test): every socket read progresses."""
    proxy = TrickleProxy(stack.aws.url, "/net-1/upload/slow", rate=2000, max_seconds=25)
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", proxy.url)
    monkeypatch.setenv("XNAT_READ_TIMEOUT", "120")
    monkeypatch.setenv("TIME_BUDGET_MARGIN_SECONDS", "3")
    s3_client.cache_clear()
    yield proxy
    proxy.close()
    s3_client.cache_clear()


@pytest.mark.parametrize(
    ("mode", "size"),
    [("per_file", 100_000), ("per_file", 5 * 1024 * 1024), ("zip", 100_000)],
    ids=["per-file", "per-file-read-ahead", "zip-batch"],
)
def test_an_s3_get_trickled_by_s3_is_cut_at_the_deadline_and_the_file_stays_pending(
    stack: LocalStack, slow_s3: TrickleProxy, monkeypatch: pytest.MonkeyPatch, mode: str, size: int
) -> None:
    monkeypatch.setenv("UPLOAD_MODE", mode)
    paths = ["slow.nii", "b.nii", "c.nii", "d.nii"]
    for path in paths:
        stack.put_image("net-1", path, path.encode() * (size // len(path)))

    elapsed = invoke_with_deadline(stack, f"slow-s3-{mode}-{size}", paths, seconds=8)

    assert slow_s3.trickled >= 1, "the object's GET went through the trickling proxy"
    assert elapsed < 8, f"the invocation returned after {elapsed:.1f} s, past its 8 s deadline"
    assert stack.worker is not None and stack.worker.stats.overruns == stack.worker.stats.errors == 0
    files = {f["path"]: f for f in checkpointed_files(stack, f"slow-s3-{mode}-{size}")}
    assert files["slow.nii"]["status"] == "pending", files["slow.nii"]
    assert stack.queue_depth("jobs") == 1, "the job continues itself"
