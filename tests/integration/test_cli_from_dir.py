"""`xnat-upload submit --from-dir DIR`: the manifest's images go from a local folder to the net's upload prefix
(boto3's managed transfer: parallel, multipart), then the manifest; the job runs on the local stack's worker.

The big file is written to disk in chunks and streamed by the CLI: neither the test nor the CLI holds it whole.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from devserver.stack import LocalStack
from xnat_upload.cli.upload import MULTIPART_THRESHOLD

from .conftest import make_manifest
from .test_cli import no_traceback, run_cli

pytestmark = pytest.mark.integration

MiB = 1024 * 1024
SMALL_FILES = 2_000
BIG_FILE_BYTES = 200 * MiB


@pytest.fixture
def running(stack: LocalStack) -> Iterator[LocalStack]:
    stack.start_pollers()
    yield stack
    stack.stop_pollers()


def write_big_file(path: Path, size: int) -> str:
    """`size` bytes written 1 MiB at a time (each chunk different); returns their MD5."""
    digest = hashlib.md5()
    with path.open("wb") as handle:
        for index in range(size // MiB):
            chunk = index.to_bytes(8, "big") * (MiB // 8)
            digest.update(chunk)
            handle.write(chunk)
    return digest.hexdigest()


def write_manifest(tmp_path: Path, paths: list[str], **overrides: object) -> Path:
    manifest = tmp_path / "manifest.json"
    manifest.write_text(json.dumps(make_manifest(files_relative_paths_to_upload=paths, **overrides)))
    return manifest


def test_from_dir_uploads_2000_small_files_and_a_200_mib_file_and_the_job_succeeds(
    stack: LocalStack, running: LocalStack, tmp_path: Path
) -> None:
    images = tmp_path / "images"
    paths = [f"slices/{index // 500:02d}/slice-{index:04d}.dcm" for index in range(SMALL_FILES)]
    for index, path in enumerate(paths):
        (images / path).parent.mkdir(parents=True, exist_ok=True)
        (images / path).write_bytes(f"slice {index}\n".encode() * 20)
    big_md5 = write_big_file(images / "ct_scan.nii.gz", BIG_FILE_BYTES)
    assert BIG_FILE_BYTES > MULTIPART_THRESHOLD
    manifest = write_manifest(tmp_path, [*paths, "ct_scan.nii.gz"])

    proc = run_cli(
        "submit", str(manifest), "--from-dir", str(images), "--bucket", stack.bucket, "--job-id", "from-dir",
        "--wait", "--poll-interval", "0.5", "--timeout", "240", env=stack.environment(), timeout=300,
    )  # fmt: skip

    no_traceback(proc)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f"uploaded {SMALL_FILES + 1} files (200.4 MiB) to s3://{stack.bucket}/net-1/upload/" in proc.stderr
    assert "uploading images: " in proc.stderr
    assert f"job from-dir succeeded: {SMALL_FILES + 1}/{SMALL_FILES + 1} files in XNAT" in proc.stderr
    big = stack.s3().head_object(Bucket=stack.bucket, Key="net-1/upload/ct_scan.nii.gz")
    assert big["ContentLength"] == BIG_FILE_BYTES
    assert "-" in big["ETag"], "a multipart upload"
    result = stack.read_result("from-dir")
    assert result is not None and result["status"] == "succeeded"
    entries = {entry["path"]: entry for entry in result["files"]}
    assert entries["ct_scan.nii.gz"]["md5"] == big_md5
    assert entries["ct_scan.nii.gz"]["bytes"] == BIG_FILE_BYTES
    assert entries[paths[-1]]["status"] == "uploaded"


def test_from_dir_names_every_missing_file_and_uploads_nothing(stack: LocalStack, tmp_path: Path) -> None:
    images = tmp_path / "images"
    (images / "seg").mkdir(parents=True)
    (images / "a.nii").write_bytes(b"a")
    manifest = write_manifest(tmp_path, ["a.nii", "seg/b.nii", "c.nii"])

    proc = run_cli("submit", str(manifest), "--from-dir", str(images), "--job-id", "gaps", env=stack.environment())

    no_traceback(proc)
    assert proc.returncode == 2
    assert proc.stderr.strip() == (
        f"error: 2 files of the manifest not found under {images}: 'seg/b.nii', 'c.nii'. --from-dir takes the "
        "folder that holds files_relative_paths_to_upload as the manifest names them (nothing was uploaded)"
    )
    assert "Contents" not in stack.s3().list_objects_v2(Bucket=stack.bucket), "no image and no manifest"


def test_from_dir_refuses_a_path_that_leaves_the_folder_through_a_symlink(stack: LocalStack, tmp_path: Path) -> None:
    images = tmp_path / "images"
    images.mkdir()
    (tmp_path / "secret.txt").write_bytes(b"not an image")
    (images / "link.nii").symlink_to(tmp_path / "secret.txt")
    manifest = write_manifest(tmp_path, ["link.nii"])

    proc = run_cli("submit", str(manifest), "--from-dir", str(images), "--job-id", "link", env=stack.environment())

    assert proc.returncode == 2
    assert "1 file of the manifest not found under" in proc.stderr and "'link.nii'" in proc.stderr
