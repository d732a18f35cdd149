"""The kill harness itself: a worker killed at a named point leaves its message in flight, and the
redelivered message (receive count + 1) finishes the job."""

from __future__ import annotations

from devserver.stack import LocalStack
from tests.integration.conftest import make_manifest
from tests.kill_harness import Child, KillAt, invoke, receive, redeliver


def _queued_job(stack: LocalStack, job_id: str) -> None:
    stack.put_image("net-1", "ct_scan.nii.gz", b"ct" * 1000)
    stack.put_manifest(job_id, make_manifest())
    assert stack.intake is not None
    while stack.intake.poll_once():  # S3's test event, then the manifest's: the job is queued
        pass


def test_a_worker_killed_before_its_result_is_redelivered_and_finishes(stack: LocalStack) -> None:
    _queued_job(stack, "kill-1")
    delivery = receive(stack)
    assert delivery is not None and delivery.receive_count == 1

    killed = invoke(stack, delivery, kill_at=KillAt("xnat_upload.store:JobStore.write_result", when="before"))

    assert killed.killed
    assert stack.read_result("kill-1") is None
    assert receive(stack) is None  # still in flight: nothing was deleted
    redeliver(stack, delivery)
    again = receive(stack)
    assert again is not None and again.receive_count == 2 and again.body == delivery.body
    finished = invoke(stack, again)
    assert not finished.killed and finished.error is None
    assert finished.response == {"batchItemFailures": []}
    assert stack.read_result("kill-1")["status"] == "succeeded"  # type: ignore[index]
    assert stack.queue_depth("jobs") == 0


def test_a_worker_can_be_killed_from_outside_while_a_request_is_in_flight(stack: LocalStack) -> None:
    _queued_job(stack, "kill-2")
    delivery = receive(stack)
    assert delivery is not None
    child = Child()
    stack.xnat.on_request(child.kill, method="PUT", path_contains="/files/")

    assert invoke(stack, delivery, child=child).killed
    assert stack.xnat.list_files("PRJ001", "ACC0001", "1", "NIFTI") == {}
