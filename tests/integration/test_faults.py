"""Nothing is lost under faults: the real handler over real HTTP, with faults injected into XNAT and S3.

Every case checks the same three promises:

* the result manifest lists every requested file, in manifest order, with a truthful status
  (anything not reported in XNAT says why);
* every file reported in XNAT (`uploaded`, or `already_exists` with `identical`) is there byte
  for byte, compared with the S3 object that was validated;
* putting the same manifest again (a new S3 event) finishes the rest: the job then succeeds,
  every file is in XNAT, and files already there are not sent again.

Faults are deterministic: they are tied to requests (the emulator's `fail_next`,
`drop_connection_next`, `delay_next`, `on_request` hooks), never to wall-clock luck.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest

from devserver.stack import DEMO_ACCESSION, DEMO_PROJECT, MAX_RECEIVE_COUNT, LocalStack
from xnat_upload.aws import s3_client
from xnat_upload.config import Settings

from .conftest import make_manifest

SCAN, RESOURCE = "1", "NIFTI"


# -- helpers -------------------------------------------------------------------------------------


def content(path: str, size: int) -> bytes:
    """Deterministic bytes that differ per file (so a mix-up between two files is caught)."""
    seed = f"<{path}>".encode()
    return (seed * (size // len(seed) + 1))[:size]


def seed_files(stack: LocalStack, count: int = 6, prefix: str = "scan", size: int = 6000) -> dict[str, bytes]:
    """`count` objects under net-1/upload/, larger than the 1 KiB a dropped connection lets through."""
    files = {f"{prefix}/file-{i:02d}.nii": content(f"{prefix}/{i}", size + 97 * i) for i in range(count)}
    for path, data in files.items():
        stack.put_image("net-1", path, data)
    return files


def run(stack: LocalStack, job_id: str, files: dict[str, bytes], timeout_seconds: float = 900.0, **manifest: Any):
    """Put the manifest (a new version, as a client re-putting it would) and run the queues dry."""
    assert stack.worker is not None
    stack.worker.function_timeout = timeout_seconds
    result = stack.run(job_id, make_manifest(files_relative_paths_to_upload=list(files), **manifest))
    assert result is not None, "a result manifest is written for every job"
    return result


def stored(stack: LocalStack, path: str) -> bytes | None:
    return stack.xnat.get_file(DEMO_PROJECT, DEMO_ACCESSION, SCAN, RESOURCE, path)


def in_place(entry: dict[str, Any]) -> bool:
    return entry["status"] == "uploaded" or (entry["status"] == "already_exists" and entry.get("identical") is True)


def by_path(result: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {entry["path"]: entry for entry in result["files"]}


def assert_truthful(stack: LocalStack, result: dict[str, Any], expected: dict[str, bytes]) -> None:
    """Every file listed once, in order; in XNAT means byte-identical; anything else carries an error."""
    assert [entry["path"] for entry in result["files"]] == list(expected)
    for entry in result["files"]:
        if in_place(entry):
            assert stored(stack, entry["path"]) == expected[entry["path"]], f"reported in XNAT but differs: {entry}"
            assert entry["url"] in result["urls"]
        else:
            assert entry["status"] in ("failed", "pending", "skipped", "already_exists"), entry
            assert entry.get("error"), f"a file not in XNAT must say why: {entry}"
            assert entry.get("url") not in result["urls"]
    assert len(result["urls"]) == sum(in_place(e) for e in result["files"])
    if all(in_place(e) for e in result["files"]) and "error" not in result:
        assert result["status"] == "succeeded"
    else:
        assert result["status"] in ("partial", "failed")
        assert result["status"] == "partial" or not any(in_place(e) for e in result["files"])


def assert_complete(stack: LocalStack, result: dict[str, Any], expected: dict[str, bytes]) -> None:
    assert_truthful(stack, result, expected)
    assert result["status"] == "succeeded", result
    assert "error" not in result
    for path, data in expected.items():
        assert stored(stack, path) == data


def count_s3_gets() -> Counter[str]:
    """GetObject calls per key made by the function's own (cached) S3 client from now on."""
    gets: Counter[str] = Counter()

    def record(params: dict[str, Any], **_: Any) -> None:
        gets[params["Key"]] += 1

    s3_client(Settings.from_env()).meta.events.register("before-parameter-build.s3.GetObject", record)
    return gets


def file_puts(stack: LocalStack, path: str) -> list[Any]:
    return [r for r in stack.xnat.requests_log if r.method == "PUT" and r.path.endswith("/files/" + path)]


@pytest.fixture
def per_file(monkeypatch: pytest.MonkeyPatch) -> None:
    """One PUT per file, so a fault aimed at one file's PUT hits that file only."""
    monkeypatch.setenv("UPLOAD_MODE", "per_file")


# -- transient XNAT failures ---------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["per_file", "zip"])
def test_a_burst_of_5xx_on_file_puts_is_retried_and_the_job_succeeds(
    stack: LocalStack, monkeypatch: pytest.MonkeyPatch, mode: str
) -> None:
    monkeypatch.setenv("UPLOAD_MODE", mode)
    files = seed_files(stack)
    stack.xnat.fail_next(503, times=2, method="PUT", path_contains="/files/")
    stack.xnat.fail_next(500, times=1, method="PUT", path_contains="/files/")

    result = run(stack, "burst", files)

    assert_complete(stack, result, files)
    assert max(entry["attempts"] for entry in result["files"]) == 4
    assert stack.xnat.count("PUT", "/files/") == (len(files) + 3 if mode == "per_file" else 4)


def test_a_5xx_burst_longer_than_the_retries_fails_that_file_only_and_a_rerun_sends_only_it(
    stack: LocalStack, per_file: None
) -> None:
    files = seed_files(stack)
    victim = list(files)[2]
    stack.xnat.fail_next(500, times=4, method="PUT", path_contains=victim)  # 1 try + XNAT_MAX_RETRIES=3

    result = run(stack, "long-burst", files)

    assert_truthful(stack, result, files)
    assert result["status"] == "partial"
    assert by_path(result)[victim]["status"] == "failed"
    assert "500" in by_path(result)[victim]["error"]
    assert by_path(result)[victim]["attempts"] == 4
    assert stored(stack, victim) is None
    assert sum(e["status"] == "uploaded" for e in result["files"]) == len(files) - 1

    puts_before = stack.xnat.count("PUT", "/files/")
    rerun = run(stack, "long-burst", files)

    assert_complete(stack, rerun, files)
    assert stack.xnat.count("PUT", "/files/") - puts_before == 1, "only the missing file is sent again"
    assert by_path(rerun)[victim]["status"] == "uploaded"
    assert all(by_path(rerun)[p]["status"] == "already_exists" for p in files if p != victim)


def test_xnat_answering_503_six_times_in_a_row_is_ridden_out(
    stack: LocalStack, per_file: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A restart behind a proxy: retried for the retry window (default 60 s), not a count of attempts."""
    monkeypatch.delenv("XNAT_MAX_RETRIES")
    files = seed_files(stack, count=3)
    stack.xnat.fail_next(503, times=6, method="PUT", path_contains="/files/")

    result = run(stack, "restart", files)

    assert_complete(stack, result, files)
    assert result["files"][0]["attempts"] == 7
    assert result["xnat_retries"] == 6


@pytest.mark.parametrize("window", ["1", None], ids=["past-the-retry-window", "past-the-time-left"])
def test_an_outage_longer_than_retries_can_ride_makes_the_job_wait_and_the_invocation_ends_in_time(
    stack: LocalStack, monkeypatch: pytest.MonkeyPatch, window: str | None
) -> None:
    monkeypatch.delenv("XNAT_MAX_RETRIES")
    monkeypatch.setenv("TIME_BUDGET_MARGIN_SECONDS", "2")
    if window is not None:
        monkeypatch.setenv("XNAT_RETRY_WINDOW_SECONDS", window)
    files = seed_files(stack, count=2)
    stack.xnat.set_down(True)
    assert stack.worker is not None and stack.intake is not None
    stack.worker.function_timeout = 5
    stack.put_manifest(f"outage-{window}", make_manifest(files_relative_paths_to_upload=list(files)))
    stack.intake.poll_once()

    started = time.monotonic()
    stack.worker.poll_once()
    elapsed = time.monotonic() - started

    assert elapsed < 5, f"the invocation returned after {elapsed:.1f} s, past its 5 s deadline"
    assert stack.read_result(f"outage-{window}") is None, "not failed: the job waits for XNAT"
    progress = stack.read_job(f"outage-{window}")
    assert progress["state"] == "waiting_for_xnat"
    assert "503" in progress["error"]["message"] and "attempts in" in progress["error"]["message"]
    assert stack.xnat.count("POST", "/data/JSESSION") > 4, "retried for a time, not a count"


def test_429_too_many_requests_is_retried(stack: LocalStack, per_file: None) -> None:
    files = seed_files(stack, count=2)
    stack.xnat.fail_next(429, times=2, method="PUT", path_contains="/files/")

    result = run(stack, "throttled", files)

    assert_complete(stack, result, files)
    assert result["files"][0]["attempts"] == 3


@pytest.mark.parametrize("status", [400, 403, 404, 409, 413, 422])
def test_a_4xx_other_than_401_and_429_is_not_retried(stack: LocalStack, per_file: None, status: int) -> None:
    files = seed_files(stack, count=3)
    victim = list(files)[1]
    stack.xnat.fail_next(status, times=1, method="PUT", path_contains=victim)

    result = run(stack, f"client-error-{status}", files)

    assert_truthful(stack, result, files)
    assert by_path(result)[victim]["status"] == "failed"
    assert str(status) in by_path(result)[victim]["error"]
    assert len(file_puts(stack, victim)) == 1, "a 4xx answer is final: exactly one request"
    assert by_path(result)[victim]["attempts"] == 1
    assert_complete(stack, run(stack, f"client-error-{status}", files), files)


# -- broken connections and slow answers ----------------------------------------------------------


def test_a_connection_dropped_mid_body_is_retried_from_a_fresh_s3_stream(stack: LocalStack, per_file: None) -> None:
    files = seed_files(stack, count=3)
    victim = list(files)[1]
    stack.xnat.drop_connection_next(times=1, method="PUT", path_contains=victim, after_bytes=1024)
    gets = count_s3_gets()

    result = run(stack, "dropped", files)

    assert_complete(stack, result, files)
    attempts = file_puts(stack, victim)
    assert [(r.status, r.body_bytes) for r in attempts] == [(0, 1024), (200, len(files[victim]))]
    assert by_path(result)[victim]["attempts"] == 2
    assert gets[f"net-1/upload/{victim}"] == 2, "each attempt reads the object again from its first byte"
    assert all(gets[f"net-1/upload/{p}"] == 1 for p in files if p != victim)


def test_a_connection_dropped_mid_zip_batch_resends_the_whole_batch(
    stack: LocalStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("UPLOAD_MODE", "zip")
    files = seed_files(stack, count=6)
    stack.xnat.drop_connection_next(times=1, method="PUT", path_contains=".zip", after_bytes=4096)
    gets = count_s3_gets()

    result = run(stack, "dropped-zip", files)

    assert_complete(stack, result, files)
    assert [r.status for r in stack.xnat.requests_log if r.method == "PUT" and ".zip" in r.path] == [0, 200]
    assert all(gets[f"net-1/upload/{p}"] == 2 for p in files), "the retry re-reads every entry from S3"


def test_a_response_slower_than_the_read_timeout_is_retried(
    stack: LocalStack, per_file: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XNAT_READ_TIMEOUT", "0.3")
    files = seed_files(stack, count=3)
    victim = next(iter(files))
    stack.xnat.delay_next(1.0, times=1, method="PUT", path_contains=victim)

    result = run(stack, "slow-once", files)

    assert_complete(stack, result, files)
    assert by_path(result)[victim]["attempts"] == 2


def test_an_xnat_that_stays_slower_than_the_read_timeout_fails_the_file_and_a_rerun_finishes(
    stack: LocalStack, per_file: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XNAT_READ_TIMEOUT", "0.3")
    files = seed_files(stack, count=3)
    victim = list(files)[1]
    stack.xnat.set_delay(0.8, method="PUT", path_contains=victim)

    result = run(stack, "slow-always", files)

    assert_truthful(stack, result, files)
    assert by_path(result)[victim]["status"] == "failed"
    assert "Timeout" in by_path(result)[victim]["error"]
    assert by_path(result)[victim]["attempts"] == 4
    # The server still works through the requests the client gave up on; let them finish first.
    stack.xnat.set_delay(0, method="PUT", path_contains=victim)
    assert wait_until(lambda: len(file_puts(stack, victim)) == 4)

    assert_complete(stack, run(stack, "slow-always", files), files)


def wait_until(condition: Callable[[], bool], timeout: float = 10.0) -> bool:
    """Wait for a condition the test caused (not for luck); False after `timeout`."""
    event = threading.Event()
    for _ in range(int(timeout / 0.02)):
        if condition():
            return True
        event.wait(0.02)
    return condition()


# -- sessions ------------------------------------------------------------------------------------


def test_a_session_expiring_between_files_is_renewed_once_and_the_job_succeeds(
    stack: LocalStack, per_file: None
) -> None:
    files = seed_files(stack, count=5)
    stack.xnat.expire_sessions_after(2, method="PUT", path_contains="/files/")

    result = run(stack, "expiry", files)

    assert_complete(stack, result, files)
    assert stack.xnat.logins == 2, "one login, one re-login after the expiry"
    third = list(files)[2]
    assert [r.status for r in file_puts(stack, third)] == [401, 200]
    assert stack.xnat.active_sessions == 0, "the renewed session is logged out too"


def test_a_401_mid_job_re_logs_in_once_and_the_job_succeeds(stack: LocalStack, per_file: None) -> None:
    files = seed_files(stack, count=3)
    stack.xnat.fail_next(401, times=1, method="PUT", path_contains=list(files)[1])

    result = run(stack, "one-401", files)

    assert_complete(stack, result, files)
    assert stack.xnat.logins == 2


def test_a_401_that_persists_after_the_re_login_fails_that_file_without_looping(
    stack: LocalStack, per_file: None
) -> None:
    files = seed_files(stack, count=3)
    victim = list(files)[1]
    stack.xnat.fail_next(401, times=2, method="PUT", path_contains=victim)

    result = run(stack, "two-401", files)

    assert_truthful(stack, result, files)
    assert by_path(result)[victim]["status"] == "failed"
    assert by_path(result)[victim]["error_code"] == "xnat_auth_failed"
    assert len(file_puts(stack, victim)) == 2, "re-login once, then give up on that file"
    assert stack.xnat.logins == 2
    assert_complete(stack, run(stack, "two-401", files), files)


def test_a_password_rotation_mid_job_costs_one_failed_login_and_ends_the_xnat_work(
    stack: LocalStack, per_file: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After a rotation every re-login fails: one failed login, then no request at all (account lock)."""
    files = seed_files(stack, count=8)
    paths = list(files)
    stack.xnat.add_file(DEMO_PROJECT, DEMO_ACCESSION, SCAN, RESOURCE, paths[0], files[paths[0]])  # there before

    def rotate() -> None:
        stack.xnat.change_password("rotated-Pa55word")
        stack.xnat.expire_sessions()

    stack.xnat.on_request(rotate, method="PUT", path_contains="/files/", skip=3)  # after 3 accepted PUTs

    result = run(stack, "rotation", files)

    assert stack.xnat.failed_logins == 1, "one failed re-login, never one per file"
    log = stack.xnat.requests_log
    refused = [i for i, r in enumerate(log) if r.method == "POST" and r.status == 401]
    assert len(refused) == 1 and log[refused[0] + 1 :] == [], "no request after the refused re-login"
    assert_truthful(stack, result, files)
    assert result["error"]["code"] == "xnat_auth_failed"
    entries = by_path(result)
    assert entries[paths[0]]["status"] == "already_exists" and entries[paths[0]]["identical"] is True
    for path in paths[1:4]:  # XNAT accepted them; the verifying listing never ran: unproven, not failed
        assert entries[path]["status"] == "pending", entries[path]
        assert "sent to XNAT but not verified" in entries[path]["error"]
        assert stored(stack, path) == files[path]
    assert entries[paths[4]]["status"] == "failed" and entries[paths[4]]["error_code"] == "xnat_auth_failed"
    assert [entries[p]["status"] for p in paths[5:]] == ["skipped"] * 3

    monkeypatch.setenv("XNAT_SERVICE_PASSWORD", "rotated-Pa55word")
    puts_before = stack.xnat.count("PUT", "/files/")
    rerun = run(stack, "rotation", files)

    assert_complete(stack, rerun, files)
    assert [by_path(rerun)[p]["status"] for p in paths[1:4]] == ["already_exists"] * 3, "verified, not re-sent"
    assert stack.xnat.count("PUT", "/files/") - puts_before == 4


# -- XNAT unavailable ----------------------------------------------------------------------------


def test_xnat_down_at_login_makes_the_job_wait_and_it_finishes_by_itself_once_xnat_is_back(stack: LocalStack) -> None:
    files = seed_files(stack, count=4)
    stack.xnat.set_down(True)

    assert run_without_result(stack, "down", files)
    progress = stack.read_job("down")
    assert progress["state"] == "waiting_for_xnat"
    assert "503" in progress["error"]["message"] and "log in" in progress["error"]["message"], (
        "an unavailable XNAT, not bad credentials"
    )
    assert progress["retry_at"] and progress["attempt"] == 1
    assert stack.xnat.count("PUT") == 0
    assert stack.queue_depth("jobs_dlq") == 0

    stack.xnat.set_down(False)
    assert stack.worker.release_deferred() == 1  # the retry delay has passed
    stack.drain()

    result = stack.read_result("down")
    assert_complete(stack, result, files)
    assert result["invocations"] == 2, "the same job resumed: nobody re-put the manifest"


def test_xnat_down_for_every_delivery_ends_in_the_dead_letter_queue_with_a_result_that_says_so(
    stack: LocalStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XNAT_UNAVAILABLE_RETRY_SECONDS", "0")  # every redelivery at once
    files = seed_files(stack, count=3)
    stack.xnat.set_down(True)

    result = run(stack, "down-long", files)

    assert_truthful(stack, result, files)
    assert result["status"] == "failed"
    assert result["error"]["code"] == "xnat_unavailable"
    assert "dead-letter queue" in result["error"]["message"]
    assert {e["status"] for e in result["files"]} == {"skipped"}
    assert result["invocations"] == MAX_RECEIVE_COUNT
    assert stack.queue_depth("jobs") == 0 and stack.queue_depth("jobs_dlq") == 1

    stack.xnat.set_down(False)
    assert_complete(stack, run(stack, "down-long", files), files)


def test_xnat_going_down_mid_job_keeps_what_was_sent_and_the_job_finishes_without_sending_it_again(
    stack: LocalStack, per_file: None
) -> None:
    files = seed_files(stack, count=5)
    stack.xnat.on_request(lambda: stack.xnat.set_down(True), method="PUT", path_contains="/files/", skip=2)

    assert run_without_result(stack, "goes-down", files)
    assert stack.read_job("goes-down")["state"] == "waiting_for_xnat"

    stack.xnat.set_down(False)
    stack.worker.release_deferred()
    stack.drain()

    result = stack.read_result("goes-down")
    assert_complete(stack, result, files)
    assert [e["status"] for e in result["files"]] == ["uploaded"] * 5
    for path in list(files)[:2]:
        assert len([r for r in file_puts(stack, path) if r.status == 200]) == 1, "sent once, verified later"


def run_without_result(stack: LocalStack, job_id: str, files: dict[str, bytes]) -> bool:
    """Run the queues dry; True when the job is still open (no result yet)."""
    stack.put_manifest(job_id, make_manifest(files_relative_paths_to_upload=list(files)))
    stack.drain()
    return stack.read_result(job_id) is None


# -- S3 objects changing under the job ------------------------------------------------------------


@pytest.mark.parametrize("mode", ["per_file", "zip"])
def test_an_object_deleted_after_validation_fails_without_sending_other_bytes(
    stack: LocalStack, monkeypatch: pytest.MonkeyPatch, mode: str
) -> None:
    monkeypatch.setenv("UPLOAD_MODE", mode)
    files = seed_files(stack, count=5)
    victim = list(files)[3]
    key = f"net-1/upload/{victim}"
    # After the intake found every object (the worker takes its findings and does not look again),
    # before the worker reads any.
    assert stack.intake is not None and stack.worker is not None
    stack.worker.function_timeout = 900.0
    stack.put_manifest(f"deleted-{mode}", make_manifest(files_relative_paths_to_upload=list(files)))
    assert stack.intake.poll_once(), "the intake validated the manifest"
    stack.s3().delete_object(Bucket=stack.bucket, Key=key)
    stack.drain()
    result = stack.read_result(f"deleted-{mode}")
    assert result is not None

    assert_truthful(stack, result, files)
    assert by_path(result)[victim]["status"] == "failed"
    assert by_path(result)[victim]["error_code"] == "source_changed"
    assert stored(stack, victim) is None
    if mode == "per_file":
        assert [e["status"] for e in result["files"]].count("uploaded") == len(files) - 1

    stack.put_image("net-1", victim, files[victim])  # the owner restores it
    assert_complete(stack, run(stack, f"deleted-{mode}", files), files)


def test_an_object_overwritten_after_validation_is_not_sent_and_a_rerun_sends_the_new_bytes(
    stack: LocalStack, per_file: None
) -> None:
    files = seed_files(stack, count=4)
    victim = list(files)[1]
    newer = content("newer", 7777)
    stack.xnat.on_request(lambda: stack.put_image("net-1", victim, newer), "GET", "/files")

    result = run(stack, "overwritten", files)

    assert_truthful(stack, result, files)
    assert by_path(result)[victim]["status"] == "failed"
    assert by_path(result)[victim]["error_code"] == "source_changed"
    assert stored(stack, victim) is None, "neither the validated nor the new bytes were sent"

    rerun = run(stack, "overwritten", files)
    assert_complete(stack, rerun, {**files, victim: newer})


# -- another writer in the same resource ----------------------------------------------------------


def test_a_put_that_loses_the_catalog_race_to_another_writer_is_retried_and_replaces_nothing(
    stack: LocalStack, per_file: None
) -> None:
    # Another writer (a person, another tool: not this service, which has one writer per resource)
    # wrote the catalog while the job's PUT was in flight: the job's bytes are on disk, uncatalogued.
    files = seed_files(stack, count=3)
    victim = list(files)[1]
    stack.xnat.add_resource(DEMO_PROJECT, DEMO_ACCESSION, SCAN, RESOURCE)
    stack.xnat.conflict_next(path_contains=victim)

    result = run(stack, "race", files)

    assert stack.xnat.catalog_conflicts_count == 1
    assert_complete(stack, result, files)
    puts = file_puts(stack, victim)
    assert [r.status for r in puts] == [500, 200, 200], "conflict; retry kept our orphan (duplicates); overwrite"
    assert [("overwrite" in r.query) for r in puts] == [False, False, True], "overwrite only for our own bytes"


def test_a_file_a_catalog_conflict_left_uncatalogued_is_catalogued_by_the_rerun(
    stack: LocalStack, per_file: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    # No retries: the conflicted PUT fails and its bytes stay on XNAT's disk, outside the catalog.
    # A plain re-send is then answered `duplicates` forever; only overwrite=true catalogues it, and
    # the re-run may send it because the first run's result says those bytes are its own.
    monkeypatch.setenv("XNAT_MAX_RETRIES", "0")
    files = seed_files(stack, count=2)
    victim = next(iter(files))
    stack.xnat.add_resource(DEMO_PROJECT, DEMO_ACCESSION, SCAN, RESOURCE)
    stack.xnat.conflict_next(path_contains=victim)

    result = run(stack, "orphan", files)

    assert_truthful(stack, result, files)
    assert by_path(result)[victim]["status"] == "failed"
    assert by_path(result)[victim]["put_unconfirmed"] is True
    disk = stack.xnat.disk_files(DEMO_PROJECT, DEMO_ACCESSION, SCAN, RESOURCE)
    assert victim in disk and stored(stack, victim) is None, "on disk, not in the catalog"

    assert_complete(stack, run(stack, "orphan", files), files)


# -- the Lambda's time budget ----------------------------------------------------------------------


def test_a_job_longer_than_one_invocation_continues_itself_and_sends_every_file_once(
    stack: LocalStack, per_file: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Each file PUT takes 0.4 s; an invocation has 5 s and stops starting files 3 s before its end:
    # a few files fit in each, and the job continues itself until every file is in XNAT.
    monkeypatch.setenv("TIME_BUDGET_MARGIN_SECONDS", "3")
    files = seed_files(stack, count=8)
    stack.xnat.set_delay(0.4, method="PUT", path_contains="/files/")

    result = run(stack, "budget", files, timeout_seconds=5)

    assert_complete(stack, result, files)
    assert [e["status"] for e in result["files"]] == ["uploaded"] * len(files)
    assert result["invocations"] >= 2
    assert stack.worker.stats.overruns == 0, "no invocation outlived its timeout"
    assert stack.xnat.times_received() == dict.fromkeys(files, 1), "every file sent exactly once"
    assert stack.xnat.logins == stack.xnat.logouts == result["invocations"]


# -- a file XNAT refuses ------------------------------------------------------------------------------


def test_a_file_xnat_refuses_inside_a_zip_batch_fails_alone_and_the_others_are_uploaded(
    stack: LocalStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("UPLOAD_MODE", "zip")
    files = seed_files(stack, count=16)
    poison = list(files)[11]
    stack.xnat.refuse_file(poison, status=500, message="java.lang.IllegalStateException: cannot read this file")

    result = run(stack, "poison", files)

    assert_truthful(stack, result, files)
    assert result["status"] == "partial"
    assert [e["path"] for e in result["files"] if e["status"] != "uploaded"] == [poison]
    assert "cannot read this file" in by_path(result)[poison]["error"]
    batch_puts = [r for r in stack.xnat.requests_log if r.method == "PUT" and r.path.endswith(".zip")]
    assert len({r.path for r in batch_puts}) <= 1 + 2 * 4, "halving 16 files: a few extra PUTs, not one each"

    received = stack.xnat.times_received()
    rerun = run(stack, "poison", files)
    assert [e["status"] for e in rerun["files"]].count("already_exists") == len(files) - 1
    again = {path for path, n in stack.xnat.times_received().items() if n > received.get(path, 0)}
    assert again == {poison}, "the re-run sends only the refused file"


def test_a_poison_file_is_found_without_waiting_out_the_retry_window_at_each_halving(
    stack: LocalStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With the service's default retry policy (a 60 s window, no count): a 500 on a zip batch is
    retried twice, then the batch is halved; the file alone gets 5 attempts. Never a window per level."""
    monkeypatch.setenv("UPLOAD_MODE", "zip")
    monkeypatch.delenv("XNAT_MAX_RETRIES")
    files = seed_files(stack, count=16)
    poison = list(files)[11]
    stack.xnat.refuse_file(poison, status=500, message="java.lang.IllegalStateException: cannot read this file")

    result = run(stack, "poison-default-retries", files)

    assert [e["path"] for e in result["files"] if e["status"] != "uploaded"] == [poison]
    entry = by_path(result)[poison]
    assert poison in entry["error"] and ".zip" not in entry["error"], "the error names the file, not its batch"
    assert "cannot read this file" in entry["error"]
    # 16 -> 8 -> 4 -> 2: 3 attempts each; then the file alone: 5.
    assert stack.xnat.times_received(poison) == {poison: 4 * 3 + 5}, "PUTs that carried it, alone or zipped"


def test_an_xnat_that_refuses_every_write_costs_a_few_puts_per_halving_level_not_one_per_file(
    stack: LocalStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A full disk: every PUT answered 500 while XNAT answers reads. Halving stops where it does not
    help, so 64 files cost a few PUTs per level, and every file says why it failed."""
    monkeypatch.setenv("UPLOAD_MODE", "zip")
    monkeypatch.delenv("XNAT_MAX_RETRIES")
    files = seed_files(stack, count=64)
    stack.xnat.fail_next(500, times=10_000, method="PUT", path_contains="/files/", body="No space left on device")

    result = run(stack, "disk-full", files)

    assert_truthful(stack, result, files)
    assert {e["status"] for e in result["files"]} == {"failed"}
    assert all("No space left on device" in e["error"] for e in result["files"])
    puts = stack.xnat.count("PUT", "/files/")
    assert puts <= 2 * 6 * 5, f"{puts} PUTs for 64 files"


def test_xnat_down_is_not_taken_for_a_poison_file_batches_are_not_split(
    stack: LocalStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("UPLOAD_MODE", "zip")
    monkeypatch.setenv("ZIP_BATCH_MAX_FILES", "4")
    files = seed_files(stack, count=16)
    stack.xnat.on_request(lambda: stack.xnat.set_down(True), method="PUT", path_contains="/files/")

    assert run_without_result(stack, "down-zip", files), "the job waits for XNAT"
    batch_paths = {r.path for r in stack.xnat.requests_log if r.method == "PUT" and r.path.endswith(".zip")}
    assert len(batch_paths) <= 3, "three batches fail in a row, then XNAT counts as unavailable: no halving"


# -- a single sign-on page in front of XNAT ---------------------------------------------------------


def test_an_sso_login_page_answering_the_login_is_xnat_auth_failed(stack: LocalStack) -> None:
    files = seed_files(stack, count=2)
    stack.xnat.sso_login_page()

    result = run(stack, "sso", files)

    assert_truthful(stack, result, files)
    assert result["error"]["code"] == "xnat_auth_failed"
    assert "login page" in result["error"]["message"]
    assert {e["status"] for e in result["files"]} == {"skipped"}
    assert [(r.method, r.path) for r in stack.xnat.requests_log] == [("POST", "/data/JSESSION")]


def test_an_sso_login_page_instead_of_the_listing_is_xnat_auth_failed_not_an_unreadable_listing(
    stack: LocalStack,
) -> None:
    files = seed_files(stack, count=2)
    stack.xnat.on_request(stack.xnat.sso_login_page, method="GET", path_contains="/files")  # the session is dropped

    result = run(stack, "sso-later", files)

    assert_truthful(stack, result, files)
    assert result["error"]["code"] == "xnat_auth_failed"
    assert "login page instead of the listing" in result["error"]["message"]
    assert stack.xnat.requests_log[-1].path.endswith("/files"), "no request after the login page"


@pytest.mark.parametrize(("mode", "count"), [("per_file", 1), ("zip", 40)])
def test_xnat_going_down_after_the_listing_makes_even_a_one_unit_job_wait(
    stack: LocalStack, monkeypatch: pytest.MonkeyPatch, mode: str, count: int
) -> None:
    monkeypatch.setenv("UPLOAD_MODE", mode)
    files = seed_files(stack, count=count)
    stack.xnat.on_request(lambda: stack.xnat.set_down(True), method="PUT", path_contains="/files/")

    assert run_without_result(stack, f"down-{mode}", files), "the job waits: XNAT does not answer the probe"
    assert stack.read_job(f"down-{mode}")["state"] == "waiting_for_xnat"

    stack.xnat.set_down(False)
    assert stack.worker is not None and stack.worker.release_deferred() == 1
    stack.drain()
    assert_complete(stack, stack.read_result(f"down-{mode}"), files)


def test_three_files_xnat_refuses_in_a_row_fail_alone_and_are_not_taken_for_an_outage(
    stack: LocalStack, per_file: None
) -> None:
    files = seed_files(stack, count=8)
    poisoned = list(files)[1:4]
    for path in poisoned:
        stack.xnat.refuse_file(path, status=500, message="cannot store this file")

    result = run(stack, "three-poisons", files)

    assert_truthful(stack, result, files)
    assert [e["path"] for e in result["files"] if e["status"] == "failed"] == poisoned
    assert [e["status"] for e in result["files"]].count("uploaded") == len(files) - 3
    assert result["status"] == "partial" and "error" not in result
