"""Check mode (`"mode": "check"`): a manifest goes through the same queue and group, XNAT receives
no write at all (not even the scan or the resource), and the result says per file what XNAT holds."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from devserver.stack import DEMO_ACCESSION, DEMO_PROJECT, LocalStack

from .conftest import make_manifest
from .test_cli import run_cli, write_manifest

SCAN, RESOURCE = "1", "NIFTI"
PATHS = ["same.nii", "size.nii", "digest.nii", "absent.nii", "gone.nii"]


def seed(stack: LocalStack) -> None:
    """In S3: every path but gone.nii. In XNAT: same.nii identical, size.nii shorter, digest.nii
    the same size with other bytes; absent.nii not at all."""
    for path in PATHS[:-1]:
        stack.put_image("net-1", path, f"<{path}>".encode() * 40)
    stack.xnat.add_file(DEMO_PROJECT, DEMO_ACCESSION, SCAN, RESOURCE, "same.nii", b"<same.nii>" * 40)
    stack.xnat.add_file(DEMO_PROJECT, DEMO_ACCESSION, SCAN, RESOURCE, "size.nii", b"<size.nii>" * 39)
    stack.xnat.add_file(DEMO_PROJECT, DEMO_ACCESSION, SCAN, RESOURCE, "digest.nii", b"<DIGEST.NII>" * 40)


def statuses(result: dict[str, Any] | None) -> dict[str, str]:
    assert result is not None
    return {f["path"]: f["status"] for f in result["files"]}


def test_a_check_reports_each_file_exactly_and_writes_nothing_to_xnat(stack: LocalStack) -> None:
    seed(stack)
    before = len(stack.xnat.writes)

    result = stack.run("check", make_manifest(files_relative_paths_to_upload=PATHS, mode="check"))

    assert stack.xnat.writes[before:] == [], "not one PUT, POST or DELETE"
    assert result is not None and result["mode"] == "check" and result["xnat_missing"] == []
    assert statuses(result) == {
        "same.nii": "in_xnat",
        "size.nii": "different",
        "digest.nii": "different",
        "absent.nii": "missing",
        "gone.nii": "source_missing",
    }
    by_path = {f["path"]: f for f in result["files"]}
    assert by_path["same.nii"]["verified"] == "md5"
    assert by_path["same.nii"]["md5"] == hashlib.md5(b"<same.nii>" * 40).hexdigest()
    assert "bytes" in by_path["size.nii"]["error"] and "MD5" in by_path["digest.nii"]["error"]
    assert result["urls"] == [by_path["same.nii"]["url"]]
    assert result["status"] == "partial" and result["counts"]["in_xnat"] == 1


def test_a_check_names_the_xnat_objects_that_do_not_exist_and_creates_neither_scan_nor_resource(
    stack: LocalStack,
) -> None:
    stack.put_image("net-1", "a.nii", b"a" * 100)

    result = stack.run("check-scan", make_manifest(files_relative_paths_to_upload=["a.nii"], scan_id="9", mode="check"))

    assert stack.xnat.writes == []
    assert stack.xnat.scan_type(DEMO_PROJECT, DEMO_ACCESSION, "9") is None
    assert result is not None and result["xnat_missing"] == ["scan", "resource"]
    assert statuses(result) == {"a.nii": "missing"} and result["status"] == "failed"

    nowhere = stack.run(
        "check-project",
        make_manifest(files_relative_paths_to_upload=["a.nii"], central_hub_project_id="CHP-404", mode="check"),
    )
    assert nowhere is not None and nowhere["xnat_missing"] == ["project", "session", "scan", "resource"]
    assert stack.xnat.writes == []


def test_every_file_in_xnat_makes_a_check_succeed(stack: LocalStack) -> None:
    stack.xnat.checksums = False  # size alone, and said so
    stack.put_image("net-1", "a.nii", b"a" * 100)
    stack.xnat.add_file(DEMO_PROJECT, DEMO_ACCESSION, SCAN, RESOURCE, "a.nii", b"a" * 100)

    result = stack.run("check-ok", make_manifest(files_relative_paths_to_upload=["a.nii"], mode="check"))

    assert result is not None and result["status"] == "succeeded"
    assert result["files"][0]["verified"] == "size" and result["verified"] == {"size": 1}


@pytest.fixture
def running(stack: LocalStack) -> Iterator[LocalStack]:
    stack.start_pollers()
    yield stack
    stack.stop_pollers()


def test_the_cli_check_command_waits_and_prints_the_findings(
    stack: LocalStack, running: LocalStack, tmp_path: Path
) -> None:
    seed(stack)
    manifest = write_manifest(tmp_path, files_relative_paths_to_upload=PATHS)

    proc = run_cli(
        "check", manifest, "--bucket", stack.bucket, "--job-id", "cli-check", "--wait", "--poll-interval", "0.2",
        "--timeout", "30", env=stack.environment(),
    )  # fmt: skip

    assert proc.returncode == 1, proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert lines[0] == "cli-check"
    assert [line.split()[:2] for line in lines[1:]] == [
        ["in_xnat", "same.nii"], ["different", "size.nii"], ["different", "digest.nii"],
        ["missing", "absent.nii"], ["source_missing", "gone.nii"],
    ]  # fmt: skip
    assert stack.xnat.writes == []


def test_post_jobs_takes_a_check(stack: LocalStack, api: str) -> None:
    seed(stack)
    body = make_manifest(files_relative_paths_to_upload=PATHS, mode="check", job_id="api-check")

    assert requests.post(f"{api}/jobs", json=body, timeout=30).status_code == 202
    stack.drain()
    answer = requests.get(f"{api}/jobs/api-check", params={"files": "all"}, timeout=30).json()

    assert answer["mode"] == "check"
    assert {f["path"]: f["status"] for f in answer["files"]}["same.nii"] == "in_xnat"
    assert stack.xnat.writes == []
