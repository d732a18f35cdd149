"""XNAT going down mid-job: stop starting transfers after a few failures in a row, say so, finish on a re-run."""

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
    return stack


def test_after_three_transfers_fail_in_a_row_the_rest_are_not_attempted(ten_files: LocalStack) -> None:
    stack = ten_files
    stack.xnat.on_request(lambda: stack.xnat.set_down(True), method="PUT", path_contains="/files/", skip=2)

    stack.invoke_trigger(stack.put_manifest("down", make_manifest(files_relative_paths_to_upload=PATHS)))
    result = stack.read_result("down")

    statuses = [f["status"] for f in result["files"]]
    # The first two reached XNAT, but the listing that would verify them failed too: never "uploaded"
    # unverified, and not "failed" either (XNAT accepted them): pending, for the re-run to verify.
    assert statuses == ["pending"] * 2 + ["failed"] * 3 + ["skipped"] * 5
    assert all("sent to XNAT but not verified" in f["error"] for f in result["files"][:2])
    assert result["error"]["code"] == "xnat_error"
    assert "re-put the manifest" in result["error"]["message"]
    assert all("not attempted" in f["error"] for f in result["files"] if f["status"] == "skipped")
    file_puts = stack.xnat.count("PUT", "/files/")
    assert file_puts <= 2 + 3 * 3, "three files with their retries, then nothing more"


def test_a_re_run_once_xnat_is_back_finishes_the_job(ten_files: LocalStack) -> None:
    stack = ten_files
    stack.xnat.on_request(lambda: stack.xnat.set_down(True), method="PUT", path_contains="/files/", skip=2)
    stack.invoke_trigger(stack.put_manifest("back", make_manifest(files_relative_paths_to_upload=PATHS)))

    stack.xnat.set_down(False)
    stack.invoke_trigger(stack.put_manifest("back", make_manifest(files_relative_paths_to_upload=PATHS)))

    result = stack.read_result("back")
    assert result["status"] == "succeeded"
    assert set(stack.xnat.list_files(DEMO_PROJECT, DEMO_ACCESSION, "1", "NIFTI")) == set(PATHS)
