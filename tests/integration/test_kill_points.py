"""The worker killed (SIGKILL) at every stage of a job, then its message redelivered as SQS does.

Each case runs the first delivery in a child process (tests/kill_harness.py) and kills it at one
point: before, during and after a PUT (zip and per-file mode), before the result, after the
job's last checkpoint, before and after a continuation's checkpoint, around its message. The rest
of the job then runs to its end in this process. Whatever the point, the job ends with:

* every file this job sent `uploaded`, byte for byte what S3 holds (never `already_exists`);
* another writer's files untouched: a catalogued one is kept (`already_exists`, not identical), an
  uncatalogued one is neither replaced nor catalogued (`failed`);
* nothing else failed.

Another writer's uncatalogued bytes sit at a path sent in a PUT the kill does not interrupt: a PUT
cut off in flight leaves its paths marked as possibly the job's own (XNAT cannot say whose
uncatalogued bytes are whose), as a dropped connection does (docs/reliability.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from devserver.event_source import wait_until
from devserver.stack import DEMO_ACCESSION, DEMO_PROJECT, LocalStack
from tests.kill_harness import Child, KillAt, invoke, receive, redeliver

from .conftest import make_manifest

SCAN, RESOURCE = "1", "NIFTI"
THEIRS = "theirs/catalogued.nii"  # in XNAT with other content before the job
LEFTOVER = "theirs/leftover.nii"  # another writer's bytes on XNAT's disk, not catalogued
PUT = "xnat_upload.xnat.client:XnatClient.upload_file_to_xnat"
CHECKPOINT = "xnat_upload.store:JobStore.write_checkpoint"
RESULT = "xnat_upload.store:JobStore.write_result"
SEND = "xnat_upload.job.queue.sender:JobQueue.send"


@dataclass(frozen=True)
class Stage:
    mode: str  # zip, per_file, or continued (per_file, several invocations)
    kill_at: KillAt | None = None
    # (method, path part, skip, body bytes): the emulator kills the worker when that request arrives, or
    # once that many bytes of its body did (mid-body)
    xnat_hook: tuple[str, str, int, int] | None = None


STAGES = {
    "zip-before-first-put": Stage("zip", KillAt(PUT, "before", 1)),
    "zip-during-second-put": Stage("zip", xnat_hook=("PUT", "/files/", 1, 2048)),
    "zip-after-second-put": Stage("zip", KillAt(PUT, "after", 2)),
    "zip-after-puts-before-verifying": Stage("zip", xnat_hook=("GET", "/files", 1, 0)),
    "zip-before-result": Stage("zip", KillAt(RESULT, "before", 1)),
    "zip-after-last-checkpoint": Stage("zip", KillAt(CHECKPOINT, "after", 1)),
    "per-file-before-first-put": Stage("per_file", KillAt(PUT, "before", 1)),
    "per-file-during-second-put": Stage("per_file", xnat_hook=("PUT", "/files/", 1, 2048)),
    "per-file-after-second-put": Stage("per_file", KillAt(PUT, "after", 2)),
    "per-file-before-result": Stage("per_file", KillAt(RESULT, "before", 1)),
    "continued-before-checkpoint": Stage("continued", KillAt(CHECKPOINT, "before", 1)),
    "continued-after-checkpoint": Stage("continued", KillAt(CHECKPOINT, "after", 1)),
    "continued-during-send": Stage("continued", KillAt(SEND, "after", 1)),
}


def content(path: str, size: int) -> bytes:
    seed = f"<{path}>".encode()
    return (seed * (size // len(seed) + 1))[:size]


def seed(stack: LocalStack, count: int) -> dict[str, bytes]:
    """Our objects, then the two paths of another writer (last, so that they go in the last PUT)."""
    files = {f"scan/file-{i:02d}.nii": content(f"scan/{i}", 3000 + 101 * i) for i in range(count)}
    files[THEIRS] = b"ours, never sent"
    files[LEFTOVER] = b"ours, never stored"
    for path, data in files.items():
        stack.put_image("net-1", path, data)
    stack.xnat.add_file(DEMO_PROJECT, DEMO_ACCESSION, SCAN, RESOURCE, THEIRS, b"their catalogued file")
    stack.xnat.add_uncatalogued_file(DEMO_PROJECT, DEMO_ACCESSION, SCAN, RESOURCE, LEFTOVER, b"their upload")
    return files


def assert_ended_truthfully(stack: LocalStack, result: dict[str, Any] | None, files: dict[str, bytes]) -> None:
    assert result is not None
    by_path = {entry["path"]: entry for entry in result["files"]}
    assert list(by_path) == list(files), "every requested file, in manifest order"
    for path, data in files.items():
        entry = by_path[path]
        if path == THEIRS:
            assert entry["status"] == "already_exists" and entry["identical"] is False
        elif path == LEFTOVER:
            assert entry["status"] == "failed" and "did not write" in entry["error"]
        else:
            assert entry["status"] == "uploaded", f"{path}: sent by this job, reported {entry['status']}"
            assert stack.xnat.get_file(DEMO_PROJECT, DEMO_ACCESSION, SCAN, RESOURCE, path) == data, path
            assert entry["verified"] == "md5"
    assert stack.xnat.get_file(DEMO_PROJECT, DEMO_ACCESSION, SCAN, RESOURCE, THEIRS) == b"their catalogued file"
    disk = stack.xnat.disk_files(DEMO_PROJECT, DEMO_ACCESSION, SCAN, RESOURCE)
    assert disk[LEFTOVER] == b"their upload", "another writer's bytes are never replaced"
    assert stack.xnat.get_file(DEMO_PROJECT, DEMO_ACCESSION, SCAN, RESOURCE, LEFTOVER) is None


@pytest.mark.parametrize("stage", list(STAGES.values()), ids=list(STAGES))
def test_a_job_killed_at_any_stage_ends_truthfully_after_redelivery(
    stack: LocalStack, monkeypatch: pytest.MonkeyPatch, stage: Stage
) -> None:
    timeout = 900.0
    if stage.mode == "zip":
        monkeypatch.setenv("UPLOAD_MODE", "zip")
        monkeypatch.setenv("ZIP_BATCH_MAX_FILES", "4")
        files = seed(stack, 11)  # 12 files to send: three batches, another writer's leftover in the last
    else:
        monkeypatch.setenv("UPLOAD_MODE", "per_file")
        files = seed(stack, 5)
    if stage.mode == "continued":  # a few PUTs fit in an invocation: the job continues itself
        monkeypatch.setenv("TIME_BUDGET_MARGIN_SECONDS", "1.5")
        stack.xnat.set_delay(0.2, method="PUT", path_contains="/files/")
        timeout = 2.2
    stack.put_manifest("killed", make_manifest(files_relative_paths_to_upload=list(files)))
    assert stack.intake is not None
    while stack.intake.poll_once():
        pass
    delivery = receive(stack)
    assert delivery is not None
    child = Child()
    if stage.xnat_hook is not None:
        method, part, skip, body_bytes = stage.xnat_hook
        stack.xnat.on_request(child.kill, method=method, path_contains=part, skip=skip, after_body_bytes=body_bytes)

    first = invoke(stack, delivery, kill_at=stage.kill_at, child=child, timeout_seconds=timeout)

    assert first.killed, first.output[-3000:]
    if stage.xnat_hook is not None and stage.xnat_hook[3]:
        # Killed with part of a PUT's body received. A zip batch is streamed as its entries are fetched,
        # so XNAT sees the connection drop (nothing stored); a small file's body already lay whole in
        # the socket buffers, so XNAT stores it and only the answer is lost. Both must end truthfully.
        def received() -> list[Any]:  # recorded by the server thread once it is done with the request
            return [r for r in stack.xnat.requests_log if r.method == "PUT" and "/files/" in r.path]

        assert wait_until(lambda: len(received()) >= 2, timeout=10)
        assert received()[1].body_bytes >= stage.xnat_hook[3]
    stack.xnat.set_delay(0, method="PUT", path_contains="/files/")
    redeliver(stack, delivery)
    stack.drain()
    assert stack.queue_depth("jobs") == 0 and stack.queue_depth("jobs_dlq") == 0
    assert_ended_truthfully(stack, stack.read_result("killed"), files)
