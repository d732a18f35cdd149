"""S3 delivers events at least once: the same manifest version does the work once (DynamoDB on moto's server)."""

from __future__ import annotations

import pytest

from devserver.stack import LocalStack
from devserver.template import create_table
from xnat_upload.job.idempotency import _persistence

from .conftest import make_manifest

TABLE = "xnat-upload-idempotency"


@pytest.fixture
def idempotent(stack: LocalStack, monkeypatch: pytest.MonkeyPatch) -> LocalStack:
    create_table(stack.aws.client("dynamodb"), "IdempotencyTable", TABLE)  # as template.yaml defines it
    monkeypatch.setenv("IDEMPOTENCY_TABLE", TABLE)
    _persistence.cache_clear()
    stack.put_image("net-1", "ct_scan.nii.gz", b"ct")
    return stack


def result_versions(stack: LocalStack, job_id: str) -> int:
    listing = stack.s3().list_object_versions(Bucket=stack.bucket, Prefix=f"results/{job_id}.json")
    return len(listing.get("Versions", []))


def test_the_same_event_twice_queues_the_job_once(idempotent: LocalStack) -> None:
    event = idempotent.put_manifest("dup", make_manifest())

    first = idempotent.invoke_trigger(event)
    second = idempotent.invoke_trigger(event)
    idempotent.drain()  # the notification's own message too: a third delivery of the same version

    assert first == second == {"batchItemFailures": []}
    assert idempotent.xnat.logins == 1
    assert result_versions(idempotent, "dup") == 1


def test_a_re_put_of_the_manifest_is_a_new_version_and_runs_again(idempotent: LocalStack) -> None:
    idempotent.run("again", make_manifest())
    idempotent.run("again", make_manifest())

    assert idempotent.xnat.logins == 2
    assert result_versions(idempotent, "again") == 2
    assert idempotent.read_result("again")["files"][0]["status"] == "already_exists"


def test_a_changed_manifest_under_the_same_key_is_a_new_job(idempotent: LocalStack) -> None:
    idempotent.run("changed", make_manifest())
    idempotent.put_image("net-1", "second.nii", b"2")
    idempotent.run("changed", make_manifest(files_relative_paths_to_upload=["second.nii"]))
    assert idempotent.read_result("changed")["files"][0]["path"] == "second.nii"
    assert idempotent.read_result("changed")["status"] == "succeeded"


def test_a_crashed_worker_invocation_says_so_in_the_ledger_and_the_redelivered_message_finishes_the_job(
    idempotent: LocalStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    import xnat_upload.job.worker as worker

    real_run_job = worker.run_job

    def crash(*args: object, **kwargs: object) -> None:
        raise RuntimeError("simulated bug")

    monkeypatch.setattr(worker, "run_job", crash)
    assert idempotent.run("crash", make_manifest()) is None, "not ended: its message comes back after a short delay"
    assert idempotent.read_job("crash")["error"]["code"] == "worker_crashed"  # type: ignore[index]
    assert idempotent.worker is not None and idempotent.worker.stats.failed_items == 1

    monkeypatch.setattr(worker, "run_job", real_run_job)
    assert idempotent.worker.release_deferred() == 1  # its delay has passed
    idempotent.drain()
    assert idempotent.read_result("crash")["status"] == "succeeded"


def test_a_duplicate_arriving_while_the_first_is_being_handled_is_not_a_failure(
    idempotent: LocalStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    from aws_lambda_powertools.utilities.idempotency.exceptions import IdempotencyAlreadyInProgressError

    from devserver.handlers import load_handler_module

    app = load_handler_module("manifest_trigger")

    def busy(function, settings, context=None):
        def run(job):
            raise IdempotencyAlreadyInProgressError("in progress")

        return run

    monkeypatch.setattr(app, "deduplicated", busy)
    response = idempotent.invoke_trigger(idempotent.put_manifest("busy", make_manifest()))

    assert response == {"batchItemFailures": []}
    assert idempotent.queue_depth("jobs") == 0, "the first delivery queues the job; this one does nothing"
