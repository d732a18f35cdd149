"""Issue 16's integrity rules over real HTTP: markers of bytes on XNAT's disk are tied to the XNAT
target they were written for, a kill never makes the job forget its own bytes, and every file in
XNAT says how it was verified."""

from __future__ import annotations

from typing import Any

import pytest

from devserver.stack import DEMO_ACCESSION, DEMO_PROJECT, LocalStack
from tests.kill_harness import KillAt, invoke, receive, redeliver

from .conftest import make_manifest

SCAN = "1"


def entry(result: dict[str, Any] | None, path: str) -> dict[str, Any]:
    assert result is not None
    return next(f for f in result["files"] if f["path"] == path)


def queue_job(stack: LocalStack, job_id: str, manifest: dict[str, Any]) -> None:
    stack.put_manifest(job_id, manifest)
    assert stack.intake is not None
    while stack.intake.poll_once():
        pass


def test_a_marker_written_for_one_resource_never_permits_an_overwrite_in_another(
    stack: LocalStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Version 1 leaves `x.nii` possibly on resource A's disk; version 2 of the same job targets
    resource B, where another writer left uncatalogued bytes at `x.nii`: they are not replaced."""
    monkeypatch.setenv("UPLOAD_MODE", "per_file")
    monkeypatch.setenv("XNAT_MAX_RETRIES", "0")  # the conflicted PUT fails: x.nii stays `put_unconfirmed`
    stack.put_image("net-1", "x.nii", b"ours" * 100)
    stack.xnat.add_resource(DEMO_PROJECT, DEMO_ACCESSION, SCAN, "A")
    stack.xnat.conflict_next(path_contains="x.nii")
    first = stack.run("cross", make_manifest(files_relative_paths_to_upload=["x.nii"], resource_id="A"))
    assert entry(first, "x.nii")["put_unconfirmed"] is True
    stack.xnat.add_uncatalogued_file(DEMO_PROJECT, DEMO_ACCESSION, SCAN, "B", "x.nii", b"another writer's")

    second = stack.run("cross", make_manifest(files_relative_paths_to_upload=["x.nii"], resource_id="B"))

    assert entry(second, "x.nii")["status"] == "failed" and "did not write" in entry(second, "x.nii")["error"]
    assert stack.xnat.disk_files(DEMO_PROJECT, DEMO_ACCESSION, SCAN, "B")["x.nii"] == b"another writer's"
    assert not any("overwrite" in r.query for r in stack.xnat.requests_log if "/resources/B/" in r.path)


def test_the_marker_still_lets_the_job_replace_its_own_leftover_in_the_resource_it_was_written_for(
    stack: LocalStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The control: in resource A, where version 1 left its own uncatalogued bytes, version 2 (after a
    version that went to B) catalogues x.nii with overwrite=true."""
    monkeypatch.setenv("UPLOAD_MODE", "per_file")
    monkeypatch.setenv("XNAT_MAX_RETRIES", "0")
    stack.put_image("net-1", "x.nii", b"ours" * 100)
    stack.xnat.add_resource(DEMO_PROJECT, DEMO_ACCESSION, SCAN, "A")
    stack.xnat.conflict_next(path_contains="x.nii")
    stack.run("own", make_manifest(files_relative_paths_to_upload=["x.nii"], resource_id="A"))
    stack.xnat.add_uncatalogued_file(DEMO_PROJECT, DEMO_ACCESSION, SCAN, "B", "x.nii", b"another writer's")
    stack.run("own", make_manifest(files_relative_paths_to_upload=["x.nii"], resource_id="B"))

    third = stack.run("own", make_manifest(files_relative_paths_to_upload=["x.nii"], resource_id="A"))

    assert entry(third, "x.nii")["status"] == "uploaded"
    assert stack.xnat.get_file(DEMO_PROJECT, DEMO_ACCESSION, SCAN, "A", "x.nii") == b"ours" * 100


def test_a_kill_right_after_a_conflicted_put_does_not_make_the_job_disown_its_bytes(
    stack: LocalStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The PUT's bytes stay on disk, uncatalogued (a catalog conflict); the worker is killed before
    any checkpoint. The redelivered run knows them for its own and catalogues the file."""
    monkeypatch.setenv("UPLOAD_MODE", "per_file")
    monkeypatch.setenv("XNAT_MAX_RETRIES", "0")
    stack.put_image("net-1", "x.nii", b"ours" * 100)
    stack.xnat.add_resource(DEMO_PROJECT, DEMO_ACCESSION, SCAN, "NIFTI")
    stack.xnat.conflict_next(path_contains="x.nii")
    queue_job(stack, "conflict-kill", make_manifest(files_relative_paths_to_upload=["x.nii"]))
    delivery = receive(stack)
    assert delivery is not None
    target = "xnat_upload.xnat.client:XnatClient.upload_file_to_xnat"

    assert invoke(stack, delivery, kill_at=KillAt(target, when="after")).killed
    assert "x.nii" in stack.xnat.disk_files(DEMO_PROJECT, DEMO_ACCESSION, SCAN, "NIFTI")
    redeliver(stack, delivery)
    stack.drain()

    result = stack.read_result("conflict-kill")
    assert entry(result, "x.nii")["status"] == "uploaded"
    assert stack.xnat.get_file(DEMO_PROJECT, DEMO_ACCESSION, SCAN, "NIFTI", "x.nii") == b"ours" * 100


@pytest.mark.parametrize("checksums", [True, False], ids=["digests", "no-digests"])
def test_every_file_in_xnat_says_how_it_was_verified(stack: LocalStack, checksums: bool) -> None:
    stack.xnat.checksums = checksums
    for name in ("a.nii", "b.nii", "c.nii", "d.nii", "e.nii"):
        stack.put_image("net-1", name, name.encode() * 50)
    paths = ["a.nii", "b.nii", "c.nii", "d.nii", "e.nii"]

    result = stack.run("verified", make_manifest(files_relative_paths_to_upload=paths))

    assert result is not None and result["status"] == "succeeded"
    level = "md5" if checksums else "size"
    assert {f["verified"] for f in result["files"]} == {level}
    assert result["verified"] == {level: 5}
