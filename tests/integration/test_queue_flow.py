"""The queue-based flow under concurrency, over real HTTP: moto's SQS (FIFO groups, deduplication,
redrive) and S3, the XNAT emulator, and the worker pollers at their maximum concurrency.

One writer per XNAT resource comes from the FIFO message group, a bounded number of XNAT sessions
from the event source mapping's maximum concurrency; nothing here is our own locking.
"""

from __future__ import annotations

import gzip
import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from devserver.event_source import wait_until
from devserver.stack import DEMO_ACCESSION, DEMO_PROJECT, LocalStack

from .conftest import make_manifest

SCAN, RESOURCE = "1", "NIFTI"


def stored(stack: LocalStack, path: str, scan: str = SCAN) -> bytes | None:
    return stack.xnat.get_file(DEMO_PROJECT, DEMO_ACCESSION, scan, RESOURCE, path)


def false_uploads(stack: LocalStack, result: dict[str, Any], expected: dict[str, bytes], scan: str = SCAN) -> list[str]:
    """Files reported in XNAT whose bytes in XNAT are not this job's."""
    return [
        entry["path"]
        for entry in result["files"]
        if (entry["status"] == "uploaded" or entry.get("identical"))
        and stored(stack, entry["path"], scan) != expected[entry["path"]]
    ]


@pytest.fixture
def running(stack: LocalStack) -> Iterator[LocalStack]:
    """The functions polling their queues in the background, the worker at MaximumConcurrency 4."""
    stack.start_pollers()
    yield stack
    stack.stop_pollers()


def results_of(stack: LocalStack, jobs: list[str], timeout: float = 60) -> dict[str, dict[str, Any]]:
    """Wait for every job's result (the pollers do the work; this only watches)."""
    assert wait_until(lambda: all(stack.read_result(job) is not None for job in jobs), timeout), [
        job for job in jobs if stack.read_result(job) is None
    ]
    return {job: stack.read_result(job) for job in jobs}  # type: ignore[misc]


# -- the two races of issue 9 -------------------------------------------------------------------


def test_two_jobs_into_one_resource_at_once_are_serialised_without_a_conflict_or_an_orphan(
    running: LocalStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    stack = running
    monkeypatch.setenv("UPLOAD_MODE", "zip")
    stack.xnat.set_catalog_write_latency(0.05)
    jobs: dict[str, dict[str, bytes]] = {}
    for job in ("left", "right"):
        jobs[job] = {f"{job}/{i:03d}.dcm": f"{job}-{i}".encode() * 300 for i in range(60)}
        for path, data in jobs[job].items():
            stack.put_image("net-1", path, data)
    for job, files in jobs.items():
        stack.put_manifest(job, make_manifest(files_relative_paths_to_upload=list(files)))

    results = results_of(stack, list(jobs))

    assert stack.xnat.catalog_conflicts_count == 0
    assert stack.xnat.max_concurrent_file_puts == 1, "one writer per resource"
    for job, files in jobs.items():
        assert results[job]["status"] == "succeeded"
        assert false_uploads(stack, results[job], files) == []
    disk = stack.xnat.disk_files(DEMO_PROJECT, DEMO_ACCESSION, SCAN, RESOURCE)
    catalogued = stack.xnat.list_files(DEMO_PROJECT, DEMO_ACCESSION, SCAN, RESOURCE)
    assert set(disk) == set(catalogued), "no bytes left on disk outside the catalog"
    assert stack.xnat.times_received() == dict.fromkeys(disk, 1), "every file sent once"


@pytest.mark.parametrize("mode", ["zip", "per_file"])
def test_two_jobs_writing_the_same_paths_with_other_bytes_never_report_the_other_ones_bytes(
    running: LocalStack, monkeypatch: pytest.MonkeyPatch, mode: str
) -> None:
    stack = running
    monkeypatch.setenv("UPLOAD_MODE", mode)
    paths = [f"seg/{i}.nii" for i in range(6)]
    contents = {
        "first": {p: b"first " + p.encode() for p in paths},
        "second": {p: b"SECOND " + p.encode() for p in paths},
    }
    for job in contents:  # each job reads its own net's copy of the same relative paths
        for path, data in contents[job].items():
            stack.put_image(f"net-{job}", path, data)
    for job in contents:
        stack.put_manifest(
            job, make_manifest(net_id=f"net-{job}", files_relative_paths_to_upload=paths, exist_ok=False)
        )

    results = results_of(stack, list(contents))

    assert stack.xnat.catalog_conflicts_count == 0
    winner = next(job for job, result in results.items() if result["status"] == "succeeded")
    loser = next(job for job in contents if job != winner)
    assert [f["status"] for f in results[loser]["files"]] == ["already_exists"] * len(paths)
    assert all(f["identical"] is False and f["error_code"] == "already_exists" for f in results[loser]["files"])
    for job in contents:
        assert false_uploads(stack, results[job], contents[job]) == [], "zero false 'uploaded'"
    for path in paths:
        assert stored(stack, path) == contents[winner][path], "the other writer's file was never replaced"


# -- bounded load on XNAT ------------------------------------------------------------------------


def test_a_burst_of_jobs_never_opens_more_xnat_sessions_than_the_maximum_concurrency(running: LocalStack) -> None:
    stack = running
    # The first logins wait for each other: they pass only if MaximumConcurrency workers really run at once.
    together = threading.Barrier(stack.worker_concurrency, timeout=20)
    stack.xnat.on_request(together.wait, "POST", "/data/JSESSION", times=stack.worker_concurrency)
    jobs = []
    for index in range(24):
        scan = "1" if index < 8 else str(index)  # a third of them into the same resource
        path = f"burst/{index:02d}.nii"
        stack.put_image("net-1", path, path.encode() * 100)
        job = f"burst-{index:02d}"
        stack.put_manifest(job, make_manifest(scan_id=scan, files_relative_paths_to_upload=[path]))
        jobs.append(job)

    results = results_of(stack, jobs)

    assert all(result["status"] == "succeeded" for result in results.values())
    assert stack.worker is not None
    assert stack.xnat.max_active_sessions == stack.worker_concurrency, "as many as allowed, never more"
    assert stack.worker.stats.max_concurrent == stack.worker_concurrency
    assert stack.xnat.catalog_conflicts_count == 0


def test_a_manifest_of_100000_paths_passes_every_limit_and_each_missing_object_is_named(stack: LocalStack) -> None:
    """The default limits take a 100,000-path manifest (about 3 MB): the intake gets as far as the
    objects (none exist here: seeding 100,000 is for `make bench`) and its result lists every path."""
    paths = [f"cohort/subject-{i:06d}/image.nii.gz" for i in range(100_000)]
    stack.put_manifest("hundred-thousand", make_manifest(files_relative_paths_to_upload=paths))
    assert stack.intake is not None

    stack.intake.poll_once()

    result = stack.read_result("hundred-thousand")
    assert result is not None and result["error"]["code"] == "object_not_found", "not refused by a limit"
    assert result["counts"] == {"missing": 100_000}
    assert [f["path"] for f in result["files"]] == paths


# -- the integrity rule against a writer outside this service ----------------------------------------


def test_a_file_another_writer_puts_during_the_job_is_kept_and_reported(stack: LocalStack) -> None:
    stack.put_image("net-1", "a.nii", b"ours")
    # Between the job's listing and its PUT, someone else catalogues the same path.
    stack.xnat.on_request(
        lambda: stack.xnat.add_file(DEMO_PROJECT, DEMO_ACCESSION, SCAN, RESOURCE, "a.nii", b"theirs"),
        "PUT",
        "/files/a.nii",
    )
    result = stack.run("intruder", make_manifest(files_relative_paths_to_upload=["a.nii"], exist_ok=False))

    (entry,) = result["files"]
    assert entry["status"] == "already_exists" and entry["identical"] is False
    assert entry["error_code"] == "xnat_kept_existing_file"
    assert stored(stack, "a.nii") == b"theirs"
    assert not any("overwrite" in r.query for r in stack.xnat.requests_log if r.method == "PUT")


def test_uncatalogued_bytes_this_job_did_not_write_are_never_overwritten(stack: LocalStack) -> None:
    stack.put_image("net-1", "a.nii", b"ours")
    stack.xnat.add_resource(DEMO_PROJECT, DEMO_ACCESSION, SCAN, RESOURCE)
    stack.xnat.add_uncatalogued_file(DEMO_PROJECT, DEMO_ACCESSION, SCAN, RESOURCE, "a.nii", b"their upload in flight")

    result = stack.run("in-flight", make_manifest(files_relative_paths_to_upload=["a.nii"], exist_ok=False))

    (entry,) = result["files"]
    assert entry["status"] == "failed" and "did not write" in entry["error"]
    assert not any("overwrite" in r.query for r in stack.xnat.requests_log if r.method == "PUT")
    disk = stack.xnat.disk_files(DEMO_PROJECT, DEMO_ACCESSION, SCAN, RESOURCE)
    assert disk["a.nii"] == b"their upload in flight"


@pytest.mark.parametrize("first_answer", ["503", "401"])
def test_a_refused_first_attempt_does_not_make_another_writers_bytes_ours(
    stack: LocalStack, monkeypatch: pytest.MonkeyPatch, first_answer: str
) -> None:
    """503 and 401 refuse before storing: the retry's `duplicates` answer is still someone else's bytes."""
    monkeypatch.setenv("UPLOAD_MODE", "per_file")
    stack.put_image("net-1", "a.nii", b"ours")
    stack.xnat.add_resource(DEMO_PROJECT, DEMO_ACCESSION, SCAN, RESOURCE)
    stack.xnat.add_uncatalogued_file(DEMO_PROJECT, DEMO_ACCESSION, SCAN, RESOURCE, "a.nii", b"their upload in flight")
    if first_answer == "503":
        stack.xnat.fail_next(503, method="PUT", path_contains="/files/a.nii")
    else:
        stack.xnat.expire_sessions_after(0, method="PUT", path_contains="/files/a.nii")

    result = stack.run("refused-first", make_manifest(files_relative_paths_to_upload=["a.nii"], exist_ok=False))

    (entry,) = result["files"]
    assert entry["status"] == "failed" and "did not write" in entry["error"]
    assert not any("overwrite" in r.query for r in stack.xnat.requests_log if r.method == "PUT")
    disk = stack.xnat.disk_files(DEMO_PROJECT, DEMO_ACCESSION, SCAN, RESOURCE)
    assert disk["a.nii"] == b"their upload in flight"


def test_with_exist_ok_uncatalogued_bytes_of_another_writer_are_replaced(stack: LocalStack) -> None:
    stack.put_image("net-1", "a.nii", b"ours")
    stack.xnat.add_resource(DEMO_PROJECT, DEMO_ACCESSION, SCAN, RESOURCE)
    stack.xnat.add_uncatalogued_file(DEMO_PROJECT, DEMO_ACCESSION, SCAN, RESOURCE, "a.nii", b"left over")

    result = stack.run("replace", make_manifest(files_relative_paths_to_upload=["a.nii"], exist_ok=True))

    assert result["status"] == "succeeded"
    assert stored(stack, "a.nii") == b"ours"


def test_a_checksum_mismatch_is_not_repaired_by_overwriting_without_exist_ok(stack: LocalStack) -> None:
    stack.put_image("net-1", "a.nii", b"ours")
    # After the job's PUT, someone replaces the file: the verification listing shows their digest.
    stack.xnat.on_request(
        lambda: stack.xnat.add_file(DEMO_PROJECT, DEMO_ACCESSION, SCAN, RESOURCE, "a.nii", b"replaced by someone"),
        "GET",
        "/files",
        skip=1,
    )
    result = stack.run("mismatch", make_manifest(files_relative_paths_to_upload=["a.nii"], exist_ok=False))

    (entry,) = result["files"]
    assert entry["status"] == "failed" and entry["error_code"] == "integrity_mismatch"
    assert "exist_ok is false" in entry["error"]
    assert stored(stack, "a.nii") == b"replaced by someone"
    assert [("overwrite" in r.query) for r in stack.xnat.requests_log if "/files/a.nii" in r.path] == [False]


# -- manifest versions and the job's own messages -------------------------------------------------------


def test_an_older_versions_late_event_never_runs_and_never_writes_the_result(stack: LocalStack) -> None:
    stack.put_image("net-1", "v1.nii", b"one")
    stack.put_image("net-1", "v2.nii", b"two")
    old = stack.put_manifest("versions", make_manifest(files_relative_paths_to_upload=["v1.nii"]))
    stack.drain()  # version 1 runs
    stack.put_manifest("versions", make_manifest(files_relative_paths_to_upload=["v2.nii"]))
    stack.drain()  # version 2 runs
    current = stack.read_result("versions")

    stack.invoke_trigger(old)  # version 1's event again, late
    stack.drain()

    assert stack.read_result("versions") == current
    assert [f["path"] for f in current["files"]] == ["v2.nii"]


def test_a_job_message_of_a_superseded_version_is_skipped_by_the_worker(stack: LocalStack) -> None:
    stack.put_image("net-1", "a.nii", b"a")
    stack.put_manifest("superseded", make_manifest(files_relative_paths_to_upload=["a.nii"]))
    assert stack.intake is not None and stack.intake.poll_once()  # version 1 is queued ...
    stack.put_manifest("superseded", make_manifest(files_relative_paths_to_upload=["a.nii"], exist_ok=True))
    stack.drain()  # ... then version 2 is put: only version 2 runs

    result = stack.read_result("superseded")
    head = stack.s3().head_object(Bucket=stack.bucket, Key="manifests/superseded.json")
    assert result["manifest_version"] == head["VersionId"]
    assert stack.xnat.logins == 1


def test_a_version_superseded_while_it_runs_never_writes_its_result(stack: LocalStack) -> None:
    stack.put_image("net-1", "a.nii", b"a")
    stack.put_image("net-1", "b.nii", b"b")
    stack.put_manifest("overtaken", make_manifest(files_relative_paths_to_upload=["a.nii"]))
    # Version 2 is put while version 1's worker uploads (its first file PUT).
    stack.xnat.on_request(
        lambda: stack.put_manifest("overtaken", make_manifest(files_relative_paths_to_upload=["b.nii"])),
        "PUT",
        "/files/a.nii",
    )
    stack.drain()

    result = stack.read_result("overtaken")
    head = stack.s3().head_object(Bucket=stack.bucket, Key="manifests/overtaken.json")
    assert result["manifest_version"] == head["VersionId"]
    assert [f["path"] for f in result["files"]] == ["b.nii"]
    versions = stack.s3().list_object_versions(Bucket=stack.bucket, Prefix="results/overtaken.json")["Versions"]
    assert len(versions) == 1, "version 1's result was never written"


def test_a_manifest_deleted_before_its_job_ran_is_not_run_and_the_result_says_why(stack: LocalStack) -> None:
    stack.put_image("net-1", "a.nii", b"a")
    stack.put_manifest("gone", make_manifest(files_relative_paths_to_upload=["a.nii"]))
    stack.s3().delete_object(Bucket=stack.bucket, Key="manifests/gone.json")
    stack.drain()

    result = stack.read_result("gone")
    assert result["status"] == "failed" and result["error"]["code"] == "manifest_deleted"
    assert stack.xnat.logins == 0
    item = stack.read_job("gone")
    assert item is not None and (item["state"], item["error"]["code"]) == ("finished", "manifest_deleted")
    assert [e["detail"]["error"]["code"] for e in stack.job_events()] == ["manifest_deleted"]


def test_a_late_event_for_a_deleted_manifest_never_replaces_its_result(stack: LocalStack) -> None:
    stack.put_image("net-1", "a.nii", b"a")
    event = stack.put_manifest("done-then-deleted", make_manifest(files_relative_paths_to_upload=["a.nii"]))
    stack.drain()
    assert stack.read_result("done-then-deleted")["status"] == "succeeded"
    stack.s3().delete_object(Bucket=stack.bucket, Key="manifests/done-then-deleted.json")

    stack.invoke_trigger(event)
    stack.drain()

    assert stack.read_result("done-then-deleted")["status"] == "succeeded"


# -- continuation limits --------------------------------------------------------------------------------


def test_a_job_that_keeps_needing_continuations_ends_partial_at_the_cap(
    stack: LocalStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("UPLOAD_MODE", "per_file")
    monkeypatch.setenv("MAX_CONTINUATIONS", "2")
    monkeypatch.setenv("TIME_BUDGET_MARGIN_SECONDS", "3")
    files = {f"cap/{i}.nii": bytes([i]) * 500 for i in range(30)}  # at most ~7 fit an invocation
    for path, data in files.items():
        stack.put_image("net-1", path, data)
    stack.xnat.set_delay(0.4, method="PUT", path_contains="/files/")
    assert stack.worker is not None
    stack.worker.function_timeout = 4.5  # 1.5 s of transfers an invocation: a few files each

    result = stack.run("capped", make_manifest(files_relative_paths_to_upload=list(files)))

    assert result["status"] == "partial"
    assert result["error"]["code"] == "continuation_limit"
    assert result["invocations"] == 3, "the first invocation and its two continuations"
    skipped = [f for f in result["files"] if f["status"] == "skipped"]
    assert skipped and all("MAX_CONTINUATIONS" in f["error"] for f in skipped)


def test_a_job_that_cannot_progress_ends_instead_of_looping(stack: LocalStack, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("UPLOAD_MODE", "per_file")
    monkeypatch.setenv("TIME_BUDGET_MARGIN_SECONDS", "2")
    stack.put_image("net-1", "stuck.nii", b"x" * 1000)
    stack.xnat.set_delay(30, method="PUT", path_contains="/files/stuck.nii")  # every try is cut by the deadline
    assert stack.worker is not None
    stack.worker.function_timeout = 3.5

    started = time.monotonic()
    result = stack.run("stuck", make_manifest(files_relative_paths_to_upload=["stuck.nii"]))

    (entry,) = result["files"]
    # However it ends (the file's own timeout after its retries, a rate showing it can never fit an
    # invocation, or invocations in a row without progress), it ends, and says why.
    assert entry["status"] in ("skipped", "failed") and entry["error"], result
    assert result["status"] == "failed"
    assert result["invocations"] <= 4
    assert time.monotonic() - started < 30
    assert stack.worker.stats.overruns == 0


# -- findings of the adversarial review ----------------------------------------------------------


def checkpoint_of(stack: LocalStack, job_id: str) -> dict[str, Any]:
    body = stack.s3().get_object(Bucket=stack.bucket, Key=f"results/.checkpoints/{job_id}.json.gz")["Body"].read()
    return json.loads(gzip.decompress(body))


def test_an_older_version_in_another_group_never_writes_after_the_newer_one_finished(
    stack: LocalStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("UPLOAD_MODE", "per_file")
    stack.put_image("net-1", "a.nii", b"a")
    stack.put_image("net-1", "b.nii", b"b")
    stack.put_manifest("moved", make_manifest(files_relative_paths_to_upload=["a.nii", "b.nii"]))

    def newer_version_runs_meanwhile() -> None:
        # Version 2 targets another resource, so another message group: it runs to its end now,
        # then XNAT goes down under version 1, whose worker takes its waiting path.
        stack.put_manifest("moved", make_manifest(resource_id="OTHER", files_relative_paths_to_upload=["a.nii"]))
        stack.drain()
        stack.xnat.set_down(True)

    stack.xnat.on_request(newer_version_runs_meanwhile, "PUT", "/resources/NIFTI/files/a.nii")
    stack.drain()

    current = stack.s3().head_object(Bucket=stack.bucket, Key="manifests/moved.json")["VersionId"]
    assert stack.read_result("moved")["manifest_version"] == current
    assert stack.read_result("moved")["status"] == "succeeded"
    assert checkpoint_of(stack, "moved")["manifest_version"] == current
    assert stack.read_job("moved")["manifest_version"] == current
    assert stack.read_job("moved")["state"] == "finished"


def test_a_session_named_by_its_xnat_id_instead_of_its_label_is_refused(stack: LocalStack) -> None:
    stack.put_image("net-1", "a.nii", b"a")
    result = stack.run("by-id", make_manifest(accession_id="XNAT_E00001", files_relative_paths_to_upload=["a.nii"]))

    assert result["error"]["code"] == "experiment_not_found"
    assert "must be the session's label" in result["error"]["message"]
    assert stack.xnat.count("PUT") == 0, "its own message group would have made it a second writer"


def queue_a_job_needing_continuations(stack: LocalStack, monkeypatch: pytest.MonkeyPatch, job_id: str) -> list[str]:
    """8 files at 0.4 s a PUT for a 4.5 s worker (3 s margin): a few per invocation. Returns the paths."""
    monkeypatch.setenv("UPLOAD_MODE", "per_file")
    monkeypatch.setenv("TIME_BUDGET_MARGIN_SECONDS", "3")
    files = [f"{job_id}/{i}.nii" for i in range(8)]
    for path in files:
        stack.put_image("net-1", path, path.encode())
    stack.xnat.set_delay(0.4, method="PUT", path_contains="/files/")
    assert stack.worker is not None and stack.intake is not None
    stack.worker.function_timeout = 4.5
    stack.put_manifest(job_id, make_manifest(files_relative_paths_to_upload=files))
    return files


def test_a_manifest_deleted_while_its_job_runs_gets_a_result_listing_what_was_done(
    stack: LocalStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    files = queue_a_job_needing_continuations(stack, monkeypatch, "deleted-midway")
    assert stack.worker is not None and stack.intake is not None
    stack.intake.poll_once()
    stack.worker.poll_once()  # the first invocation sends a few and continues
    stack.s3().delete_object(Bucket=stack.bucket, Key="manifests/deleted-midway.json")
    stack.drain()

    result = stack.read_result("deleted-midway")
    assert result["error"]["code"] == "manifest_deleted" and "while its job ran" in result["error"]["message"]
    sent = [f for f in result["files"] if f["status"] == "uploaded"]
    assert sent and len(result["files"]) == len(files)
    in_xnat = stack.xnat.list_files(DEMO_PROJECT, DEMO_ACCESSION, SCAN, RESOURCE)
    assert {f["path"] for f in sent} == set(in_xnat), "the result lists exactly what reached XNAT"
    item = stack.read_job("deleted-midway")
    assert item is not None and (item["state"], item["files_done"]) == ("finished", len(sent))
    assert [e["detail"]["error"]["code"] for e in stack.job_events()] == ["manifest_deleted"]


def test_an_unversioned_bucket_is_refused_with_a_clear_result(stack: LocalStack) -> None:
    stack.s3().put_bucket_versioning(Bucket=stack.bucket, VersioningConfiguration={"Status": "Suspended"})
    stack.put_image("net-1", "a.nii", b"a")
    result = stack.run("unversioned", make_manifest(files_relative_paths_to_upload=["a.nii"]))

    assert result["error"]["code"] == "configuration_error" and "versioning" in result["error"]["message"]
    assert stack.xnat.logins == 0


def test_a_redelivered_older_continuation_does_not_fork_the_job(
    stack: LocalStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    files = queue_a_job_needing_continuations(stack, monkeypatch, "forked")
    assert stack.worker is not None and stack.intake is not None
    stack.intake.poll_once()
    first = stack.sqs().receive_message(QueueUrl=stack.queue_urls["jobs"], AttributeNames=["All"])["Messages"][0]
    stack.sqs().change_message_visibility(
        QueueUrl=stack.queue_urls["jobs"], ReceiptHandle=first["ReceiptHandle"], VisibilityTimeout=0
    )
    stack.worker.poll_once()  # continuation 0 runs and sends continuation 1
    # Continuation 0 again, as after a crash past its send (SQS's five-minute deduplication long over).
    stack.sqs().send_message(
        QueueUrl=stack.queue_urls["jobs"], MessageBody=first["Body"], MessageGroupId=first["Attributes"]["MessageGroupId"],
        MessageDeduplicationId="redelivered",
    )  # fmt: skip
    stack.drain()

    result = stack.read_result("forked")
    assert result["status"] == "succeeded"
    assert stack.xnat.times_received() == dict.fromkeys(files, 1), "nothing sent twice"
    assert result["invocations"] == stack.worker.stats.invocations - 1, "the stale message ran nothing"


def test_a_manifest_key_under_a_dot_folder_is_not_a_job(stack: LocalStack) -> None:
    """`manifests/.progress/victim.json` would write its result onto job `victim`'s progress object."""
    stack.put_image("net-1", "a.nii", b"a")
    stack.run("victim", make_manifest(files_relative_paths_to_upload=["a.nii"]))
    before = stack.read_job("victim")
    stack.s3().put_object(Bucket=stack.bucket, Key="manifests/.progress/victim.json", Body=b"not a manifest")
    stack.drain()

    assert stack.read_job("victim") == before
    assert stack.s3().list_objects_v2(Bucket=stack.bucket, Prefix="results/.progress/.progress")["KeyCount"] == 0
