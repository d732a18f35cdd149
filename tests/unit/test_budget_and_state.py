"""Units of work sized from the measured rate, and the state handed between invocations."""

from __future__ import annotations

import gzip
import json

from xnat_upload.job import FileResult, FileStatus, JobState
from xnat_upload.submission import PAGE_MAX_BYTES, result_summary
from xnat_upload.transfer.budget import FIRST_BATCH_RATE, PROBE_BYTES, Throughput, TimeBudget
from xnat_upload.transfer.sources import SourceObject

MIB = 1024 * 1024


def clock(seconds: float):
    return lambda: seconds


def test_without_a_measurement_any_transfer_may_start() -> None:
    budget = TimeBudget(clock(100), margin_seconds=20)
    assert budget.allows(10 * 1024 * MIB), "no assumed rate: the calls' deadline guards the first transfer"
    assert not budget.never_fits(10 * 1024 * MIB)


def test_the_first_batch_is_sized_for_the_slowest_xnat_planned_for() -> None:
    assert TimeBudget(clock(900), 20).batch_bytes(512 * MIB) == int(FIRST_BATCH_RATE * 880 * 0.5)
    assert TimeBudget(clock(30), 20).batch_bytes(512 * MIB) == PROBE_BYTES, "never smaller than a probe"
    assert TimeBudget(clock(900), 20).batch_bytes(64 * MIB) == 64 * MIB


def test_no_time_left_allows_nothing() -> None:
    assert not TimeBudget(clock(20), margin_seconds=20).allows(1)


def test_after_a_measurement_a_transfer_starts_only_if_it_fits_the_time_left() -> None:
    budget = TimeBudget(clock(30), margin_seconds=20, throughput=Throughput(10 * MIB, 1.0))  # 10 MiB/s, 10 s left
    assert budget.allows(90 * MIB)
    assert not budget.allows(110 * MIB)


def test_batches_fit_the_time_left_and_half_an_invocation() -> None:
    measured = Throughput(10 * MIB, 1.0)
    assert TimeBudget(clock(30), 20, measured, invocation_seconds=900).batch_bytes(512 * MIB) == int(
        10 * MIB * 10 * 0.8
    )
    assert TimeBudget(clock(900), 20, measured, invocation_seconds=60).batch_bytes(512 * MIB) == 10 * MIB * 20
    assert TimeBudget(clock(900), 20, measured, invocation_seconds=900).batch_bytes(64 * MIB) == 64 * MIB
    assert TimeBudget(None, 20, measured).batch_bytes(512 * MIB) == 512 * MIB, "no deadline: the configured bound"


def test_a_rate_from_a_few_small_files_is_latency_and_does_not_count() -> None:
    budget = TimeBudget(clock(900), 20, Throughput(5_000, 2.0), invocation_seconds=60)
    assert budget.throughput.rate is None
    assert not budget.never_fits(100 * MIB) and budget.allows(100 * MIB)


def test_a_file_longer_than_a_whole_invocation_never_fits() -> None:
    budget = TimeBudget(clock(900), 20, Throughput(MIB, 1.0), invocation_seconds=60)  # 1 MiB/s, 40 s of transfer
    assert budget.never_fits(41 * MIB)
    assert not budget.never_fits(39 * MIB)


def test_a_checkpoint_of_100000_files_is_small_and_round_trips() -> None:
    state = JobState.new("big", "v1")
    state.files = [
        FileResult(f"scan/{i:06d}.dcm", FileStatus.UPLOADED if i % 2 else FileStatus.PENDING, bytes=16384,
                   source_etag=f'"{i:032x}"', md5=f"{i:032x}" if i % 2 else None, attempts=1)
        for i in range(100_000)
    ]  # fmt: skip
    state.files[7].put_unconfirmed = True
    state.sources = {
        f.path: SourceObject(f.path, f"net/upload/{f.path}", 16384, f.source_etag, None) for f in state.files
    }
    state.throughput = Throughput(123 * MIB, 4.5)

    data = state.to_bytes()
    restored = JobState.from_bytes(data)

    assert restored is not None
    assert restored.files == state.files and restored.sources == state.sources
    assert restored.throughput == state.throughput and restored.manifest_version == "v1"
    assert len(data) < 8 * MIB, f"{len(data) / MIB:.1f} MiB"


def test_an_unreadable_checkpoint_is_a_fresh_start_not_a_crash() -> None:
    assert JobState.from_bytes(b"not gzip") is None
    assert JobState.from_bytes(gzip.compress(b"[" * 100_000)) is None
    assert JobState.from_bytes(gzip.compress(json.dumps({"format": 999}).encode())) is None


def test_the_status_of_a_100000_file_job_fits_in_a_page_under_one_megabyte() -> None:
    long = "d/" * 200 + "x.dcm"
    files = [
        {"path": f"{i:06d}/{long}", "status": "failed", "error": "e" * 300, "error_code": "xnat_error", "bytes": 1}
        for i in range(100_000)
    ]
    document = {"job_id": "big", "status": "partial", "counts": {"failed": 100_000}, "files": files, "urls": []}

    page = result_summary(document, location="s3://b/results/big.json", limit=1000)

    body = json.dumps(page)
    assert len(body) <= PAGE_MAX_BYTES + 1024 < 1_000_000
    assert page["files_matching"] == 100_000 and page["next_offset"] == len(page["files"])
    assert page["result_location"] == "s3://b/results/big.json"
    assert "urls" not in page
