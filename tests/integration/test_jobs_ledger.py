"""The jobs ledger, the job-end events and the sweeper, over real HTTP (moto's S3, SQS, DynamoDB and
EventBridge; the XNAT emulator): every job that stops, for any reason, ends with a result, a ledger
item and exactly one event that say why, and no stale writer moves the ledger back."""

from __future__ import annotations

import io
import json
import logging
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from devserver.stack import LocalStack
from tests.integration.conftest import make_manifest
from tests.kill_harness import KillAt, invoke, receive, redeliver
from xnat_upload import Settings
from xnat_upload.aws import s3_client
from xnat_upload.job.ledger import DynamoDBLedger, JobRecord, StaleWriteError, ledger_for
from xnat_upload.job.sweeper import sweep
from xnat_upload.observability import logger

IMAGE = b"NIfTI" * 2000
EVENT_FIELDS = {"job_id", "manifest_version", "status", "counts", "bytes", "result", "xnat", "submitted_by", "error"}


@pytest.fixture(autouse=True)
def _fresh_ledger_client() -> None:
    ledger_for.cache_clear()  # each test's moto server state, each test's environment


@pytest.fixture
def log_lines() -> Iterator[io.StringIO]:
    """The service's log lines, formatted as Powertools formats them in Lambda."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logger.registered_formatter)
    logging.getLogger(logger.name).addHandler(handler)
    try:
        yield stream
    finally:
        logging.getLogger(logger.name).removeHandler(handler)


def _json_lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def _events_of(stack: LocalStack, job_id: str) -> list[dict[str, Any]]:
    return [e for e in stack.job_events() if e["detail"]["job_id"] == job_id]


def _ledger(stack: LocalStack) -> DynamoDBLedger:
    return ledger_for(Settings.from_env())  # type: ignore[return-value]


# -- a job's life in the ledger ------------------------------------------------------------------------


def test_a_job_is_queued_then_finished_in_the_ledger_with_who_submitted_it_and_one_event(stack: LocalStack) -> None:
    stack.put_image("net-1", "ct_scan.nii.gz", IMAGE)
    s3_event = stack.put_manifest("life", make_manifest())  # the event as S3 sends it (moto's lacks the principal)
    stack.invoke_trigger(s3_event)
    queued = stack.read_job("life")
    assert queued is not None and queued["state"] == "queued" and queued["files_total"] == 1
    assert queued["xnat"] == {"project": "CHP-001", "session": "ACC0001", "scan": "1", "resource": "NIFTI"}
    assert queued["submitted_by"] == "AWS:AIDAEXAMPLE"  # the principal of the S3 event that put the manifest

    stack.drain()

    item = stack.read_job("life")
    assert item is not None
    assert (item["state"], item["status"], item["files_done"], item["bytes_done"]) == ("finished", "succeeded", 1,
                                                                                       len(IMAGE))  # fmt: skip
    assert item["result_key"] == "results/life.json" and item["event_sent"] is True
    (event,) = _events_of(stack, "life")
    assert event["source"] == "xnat-upload" and event["detail-type"] == "Upload Job Finished"
    assert set(event["detail"]) >= EVENT_FIELDS
    detail = event["detail"]
    assert detail["status"] == "succeeded" and detail["counts"] == {"uploaded": 1}
    assert detail["result"] == f"s3://{stack.bucket}/results/life.json"
    assert detail["xnat"] == {"project": "CHP-001", "session": "ACC0001", "scan": "1", "resource": "NIFTI"}
    assert detail["manifest_version"] == item["manifest_version"] and detail["error"] is None


def test_every_kind_of_job_end_puts_exactly_one_event(stack: LocalStack) -> None:
    stack.put_image("net-1", "a.nii", IMAGE)
    stack.put_image("net-1", "b.nii", IMAGE + b"b")
    stack.xnat.add_file("PRJ001", "ACC0001", "1", "NIFTI", "b.nii", b"another writer's bytes")
    stack.run("ok", make_manifest(files_relative_paths_to_upload=["a.nii"]))
    stack.run("half", make_manifest(files_relative_paths_to_upload=["a.nii", "b.nii"], scan_id="1"))
    stack.run("refused", make_manifest(files_relative_paths_to_upload=["not-there.nii"]))

    statuses = {job: [e["detail"]["status"] for e in _events_of(stack, job)] for job in ("ok", "half", "refused")}
    assert statuses == {"ok": ["succeeded"], "half": ["partial"], "refused": ["failed"]}
    refused = _events_of(stack, "refused")[0]["detail"]
    assert refused["error"]["code"] == "object_not_found"
    assert stack.read_job("refused")["state"] == "finished"  # type: ignore[index]

    stack.drain()  # nothing more to do: no second event for any job
    assert len(stack.job_events()) == 3


# -- nothing silent --------------------------------------------------------------------------------------


def test_a_crashing_worker_is_loud_comes_back_soon_and_its_last_delivery_ends_the_job(
    stack: LocalStack, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], log_lines: io.StringIO
) -> None:
    import xnat_upload.job.worker as worker

    def boom(*args: Any, **kwargs: Any) -> None:
        raise KeyError("a bug")

    monkeypatch.setattr(worker, "run_job", boom)
    monkeypatch.setenv("CRASH_RETRY_SECONDS", "1")
    monkeypatch.setenv("CRASH_MAX_RETRY_SECONDS", "1")
    stack.put_image("net-1", "ct_scan.nii.gz", IMAGE)
    stack.put_manifest("crash", make_manifest())
    assert stack.intake is not None and stack.worker is not None
    while stack.intake.poll_once():
        pass

    assert stack.worker.poll_once()  # the first delivery crashes
    (error,) = [line for line in _json_lines(log_lines.getvalue()) if line.get("level") == "ERROR"]
    assert error["message"] == "job crashed" and error["job_id"] == "crash" and "KeyError" in error["traceback"]
    assert any("JobsCrashed" in line for line in _json_lines(capsys.readouterr().out))
    item = stack.read_job("crash")
    assert item is not None and item["state"] == "running" and item["error"]["code"] == "worker_crashed"
    assert stack.read_result("crash") is None  # not ended: it comes back
    # Back within the short delay (1 s here; 10 s growing to 5 min by default), not the 90-minute visibility.
    monkeypatch.setenv("CRASH_RETRY_SECONDS", "0")
    monkeypatch.setenv("CRASH_MAX_RETRY_SECONDS", "0")
    deadline = time.monotonic() + 10
    while not stack.worker.poll_once():
        assert time.monotonic() < deadline, "the crashed job's message did not come back within its delay"
        time.sleep(0.1)

    stack.drain()  # the remaining deliveries crash too (at once, now); the last one ends the job

    result = stack.read_result("crash")
    assert result is not None and result["error"]["code"] == "worker_crashed"
    assert result["files"][0]["status"] == "skipped"
    item = stack.read_job("crash")
    assert item is not None
    assert (item["state"], item["status"], item["given_up"]) == ("finished", "failed", True)
    assert item["error"]["code"] == "worker_crashed" and item["attempt"] == 8
    assert [e["detail"]["error"]["code"] for e in _events_of(stack, "crash")] == ["worker_crashed"]
    assert stack.queue_depth("jobs_dlq") == 1


def test_a_worker_killed_on_every_delivery_is_ended_by_the_sweeper_and_a_redrive_resumes_it(
    stack: LocalStack,
) -> None:
    files = [f"scan/{i}.nii" for i in range(12)]
    for path in files:
        stack.put_image("net-1", path, IMAGE + path.encode())
    stack.put_manifest("killed", make_manifest(files_relative_paths_to_upload=files))
    assert stack.intake is not None
    while stack.intake.poll_once():
        pass
    settings = Settings.from_env()
    s3 = s3_client(settings)

    for attempt in range(1, 9):  # JobQueue's maxReceiveCount
        delivery = receive(stack)
        assert delivery is not None and delivery.receive_count == attempt
        assert invoke(stack, delivery, kill_at=KillAt("xnat_upload.job.worker:run_job", when="before")).killed
        if attempt == 4:  # still deliveries to come: the sweeper leaves it alone, however late it looks
            assert sweep(settings=settings, s3=s3, now=datetime.now(UTC) + timedelta(hours=3)).ended == []
        redeliver(stack, delivery)
    assert receive(stack) is None  # the ninth receive moved it to the dead-letter queue
    assert stack.queue_depth("jobs_dlq") == 1
    assert stack.read_job("killed")["state"] == "running"  # type: ignore[index]
    assert stack.read_result("killed") is None and _events_of(stack, "killed") == []

    assert sweep(settings=settings, s3=s3).ended == []  # its last lease has not run out yet
    later = datetime.now(UTC) + timedelta(hours=1)  # past the last delivery's lease (its timeout + 60 s) and grace
    swept = sweep(settings=settings, s3=s3, now=later)

    assert swept.ended == ["killed"]
    result = stack.read_result("killed")
    assert result is not None and result["error"]["code"] == "worker_killed"
    assert {f["status"] for f in result["files"]} == {"skipped"}
    item = stack.read_job("killed")
    assert item is not None and (item["state"], item["status"], item["given_up"]) == ("finished", "failed", True)
    (event,) = _events_of(stack, "killed")
    assert event["detail"]["error"]["code"] == "worker_killed" and event["detail"]["given_up"] is True
    assert stack.queue_depth("jobs_dlq") == 1, "the sweeper never takes a message out of the dead-letter queue"
    assert sweep(settings=settings, s3=s3, now=later).ended == []  # once

    assert stack.redrive() == 1
    stack.drain()

    assert stack.read_result("killed")["status"] == "succeeded"  # type: ignore[index]
    item = stack.read_job("killed")
    assert item is not None and (item["state"], item["status"]) == ("finished", "succeeded")
    assert item["given_up"] is False
    assert [e["detail"]["status"] for e in _events_of(stack, "killed")] == ["failed", "succeeded"]


def test_the_sweeper_puts_an_event_that_a_killed_writer_never_put(stack: LocalStack) -> None:
    stack.put_image("net-1", "ct_scan.nii.gz", IMAGE)
    stack.put_manifest("unsaid", make_manifest())
    assert stack.intake is not None
    while stack.intake.poll_once():
        pass
    delivery = receive(stack)
    assert delivery is not None
    killed = invoke(stack, delivery, kill_at=KillAt("xnat_upload.job.ending:announce_job_end", when="before"))
    assert killed.killed
    assert stack.read_job("unsaid")["event_sent"] is False  # type: ignore[index]
    assert _events_of(stack, "unsaid") == []

    settings = Settings.from_env()
    swept = sweep(settings=settings, s3=s3_client(settings), now=datetime.now(UTC) + timedelta(minutes=10))

    assert swept.announced == ["unsaid"]
    assert [e["detail"]["status"] for e in _events_of(stack, "unsaid")] == ["succeeded"]
    assert stack.read_job("unsaid")["event_sent"] is True  # type: ignore[index]


# -- stale writers --------------------------------------------------------------------------------------


def test_no_stale_writer_moves_the_ledger_back(stack: LocalStack) -> None:
    ledger = _ledger(stack)
    assert ledger.open(JobRecord("stale", "v2", manifest_seq="00000000000000000000000000000002"))
    # An older version's late intake event (S3 took it earlier: a smaller sequencer) opens nothing.
    assert not ledger.open(JobRecord("stale", "v1", manifest_seq="00000000000000000000000000000001"))
    # A duplicate of the current version's event does not turn a running job back into queued.
    ledger.update("stale", "v2", 0, state="running")
    assert not ledger.open(JobRecord("stale", "v2", manifest_seq="00000000000000000000000000000002"))
    # The older version's worker can neither move nor end the job.
    with pytest.raises(StaleWriteError):
        ledger.update("stale", "v1", 0, state="running", files_done=5)
    assert ledger.finish("stale", "v1", 0, status="succeeded") is None
    # A late message of an earlier continuation neither.
    ledger.update("stale", "v2", 2, state="running", files_done=7)
    with pytest.raises(StaleWriteError):
        ledger.update("stale", "v2", 1, state="running", files_done=3)
    assert ledger.finish("stale", "v2", 1, status="failed") is None
    # The one real end wins once; a duplicate end (a redelivered last message) is no second end.
    assert ledger.finish("stale", "v2", 2, status="succeeded") is not None
    assert ledger.finish("stale", "v2", 2, status="succeeded") is None
    with pytest.raises(StaleWriteError):
        ledger.update("stale", "v2", 2, state="running")

    record = ledger.get("stale")
    assert record is not None
    assert (record.manifest_version, record.state, record.status, record.files_done) == ("v2", "finished",
                                                                                         "succeeded", 7)  # fmt: skip


def test_a_message_of_an_older_manifest_version_leaves_the_newer_ones_ledger_item_alone(stack: LocalStack) -> None:
    stack.put_image("net-1", "ct_scan.nii.gz", IMAGE)
    stack.put_manifest("reput", make_manifest())
    stack.put_manifest("reput", make_manifest(exist_ok=True))
    stack.drain()

    item = stack.read_job("reput")
    current = stack.s3().head_object(Bucket=stack.bucket, Key="manifests/reput.json")["VersionId"]
    assert item is not None and item["manifest_version"] == current and item["status"] == "succeeded"
    assert [e["detail"]["manifest_version"] for e in _events_of(stack, "reput")] == [current]


# -- the sweeper judges only what is dead ----------------------------------------------------------------


def test_the_sweeper_leaves_alone_a_continued_job_and_a_job_still_waiting_for_its_first_delivery(
    stack: LocalStack,
) -> None:
    ledger = _ledger(stack)
    past = (datetime.now(UTC) - timedelta(hours=2)).isoformat(timespec="milliseconds")
    # The last allowed delivery continued the job: the next level's message waits for a free worker.
    assert ledger.open(JobRecord("continued", "v1"))
    ledger.update("continued", "v1", 3, state="running", attempt=8, lease_until=past)
    ledger.update("continued", "v1", 4, state="running", attempt=None, lease_until=None)
    # A job queued behind its XNAT resource's other jobs for a day.
    assert ledger.open(JobRecord("waiting", "v1"))
    settings = Settings.from_env()
    s3 = s3_client(settings)

    assert sweep(settings=settings, s3=s3, now=datetime.now(UTC) + timedelta(days=1)).ended == []

    # Past the queue's retention, a message that never reached a worker is gone: the job ends, saying so.
    swept = sweep(settings=settings, s3=s3, now=datetime.now(UTC) + timedelta(days=15))
    assert sorted(swept.ended) == ["continued", "waiting"]
    assert {e["detail"]["error"]["code"] for e in stack.job_events()} == {"job_stalled"}


def test_a_refused_manifest_quoting_megabytes_still_gets_its_ledger_item_and_event(stack: LocalStack) -> None:
    huge = make_manifest(central_hub_project_id="P" * 500_000)  # refused by the schema; quoted nowhere whole
    stack.run("huge-id", huge)

    item = stack.read_job("huge-id")
    assert item is not None and (item["state"], item["status"]) == ("finished", "failed")
    assert "project" not in item["xnat"] and item["xnat"]["session"] == "ACC0001"
    assert [e["detail"]["status"] for e in _events_of(stack, "huge-id")] == ["failed"]


def test_a_worker_opens_the_item_of_a_version_whose_intake_has_not_run_yet(stack: LocalStack) -> None:
    from xnat_upload.job.queue import JobQueue
    from xnat_upload.manifest import JobManifest
    from xnat_upload.submission import enqueue_job

    stack.put_image("net-1", "ct_scan.nii.gz", IMAGE)
    stack.run("again", make_manifest())
    first = stack.read_job("again")
    assert first is not None and first["status"] == "succeeded"
    settings = Settings.from_env()
    queue = JobQueue(stack.sqs(), stack.queue_urls["jobs"])

    # The upload route puts a new version and sends its message itself; the worker gets it first.
    version = enqueue_job(JobManifest.from_data(make_manifest(exist_ok=True)), job_id="again", settings=settings,
                          s3=s3_client(settings), queue=queue)  # fmt: skip
    assert stack.worker is not None and stack.worker.poll_once()

    item = stack.read_job("again")
    assert item is not None and (item["manifest_version"], item["state"]) == (version, "finished")
    stack.drain()  # the intake's own event of that version: nothing more
    assert [e["detail"]["manifest_version"] for e in _events_of(stack, "again")] == [first["manifest_version"],
                                                                                      version]  # fmt: skip


def test_an_end_is_noted_as_announced_only_for_that_end(stack: LocalStack) -> None:
    ledger = _ledger(stack)
    assert ledger.open(JobRecord("noted", "v1"))
    first = ledger.finish("noted", "v1", 0, status="failed", given_up=True)
    assert first is not None
    ledger.update("noted", "v1", 0, state="running")  # a redrive reopens it
    second = ledger.finish("noted", "v1", 0, status="succeeded", given_up=False)
    assert second is not None and second.finished_at != first.finished_at

    ledger.mark_event_sent("noted", "v1", first.finished_at)  # a slow announcer of the first end

    record = ledger.get("noted")
    assert record is not None and record.event_sent is False and record.given_up is False and record.error is None
