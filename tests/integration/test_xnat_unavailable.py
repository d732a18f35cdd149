"""XNAT going down mid-job: stop starting transfers after a few failures in a row, wait, finish by itself."""

from __future__ import annotations

import pytest

from devserver.stack import DEMO_ACCESSION, DEMO_PROJECT, LocalStack

from .conftest import make_manifest

PATHS = [f"slices/{i:02d}.nii" for i in range(10)]


@pytest.fixture
def ten_files(stack: LocalStack, monkeypatch: pytest.MonkeyPatch) -> LocalStack:
    monkeypatch.setenv("UPLOAD_MODE", "per_file")
    monkeypatch.setenv("XNAT_MAX_RETRIES", "2")
    for path in PATHS:
        stack.put_image("net-1", path, path.encode() * 100)
    stack.xnat.on_request(lambda: stack.xnat.set_down(True), method="PUT", path_contains="/files/", skip=2)
    return stack


def test_after_three_transfers_fail_in_a_row_the_rest_are_not_attempted_and_the_job_waits(
    ten_files: LocalStack,
) -> None:
    stack = ten_files
    stack.put_manifest("down", make_manifest(files_relative_paths_to_upload=PATHS))
    stack.drain()

    assert stack.read_result("down") is None, "not a failure: the job waits for XNAT"
    progress = stack.read_job("down")
    assert progress["state"] == "waiting_for_xnat"
    assert progress["files_failed"] == 0, "files XNAT failed while down are pending, not failed"
    file_puts = stack.xnat.count("PUT", "/files/")
    assert file_puts <= 2 + 3 * 3, "three files with their retries, then nothing more"


def test_once_xnat_is_back_the_job_finishes_without_sending_what_it_had_sent(ten_files: LocalStack) -> None:
    stack = ten_files
    stack.put_manifest("back", make_manifest(files_relative_paths_to_upload=PATHS))
    stack.drain()

    stack.xnat.set_down(False)
    assert stack.worker is not None
    stack.worker.release_deferred()
    stack.drain()

    result = stack.read_result("back")
    assert result["status"] == "succeeded"
    assert [f["status"] for f in result["files"]] == ["uploaded"] * len(PATHS)
    assert set(stack.xnat.list_files(DEMO_PROJECT, DEMO_ACCESSION, "1", "NIFTI")) == set(PATHS)
    stored = [
        r.path.rsplit("/files/", 1)[1]
        for r in stack.xnat.requests_log
        if r.method == "PUT" and r.status == 200 and "/files/" in r.path
    ]
    assert sorted(stored) == sorted(PATHS), "every file stored once: the two sent before XNAT went down not again"
