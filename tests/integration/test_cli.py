"""`xnat-upload` end to end: the CLI as a subprocess against moto's server, the XNAT emulator and the
queue flow (S3 notification -> intake -> job queue -> worker), plus its rendering as plain functions."""

from __future__ import annotations

import io
import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from devserver.stack import DEMO_ACCESSION, DEMO_PROJECT, LocalStack
from xnat_upload import Settings
from xnat_upload.cli import render
from xnat_upload.cli.jobs import since_time
from xnat_upload.cli.main import ProgressDisplay, aws_error_message, main
from xnat_upload.job.ledger import JobRecord, ledger_for

from .conftest import make_manifest

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
LAYER = ROOT / "layers" / "xnat_upload"


def run_cli(*args: str, env: dict[str, str] | None = None, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "XNAT_", "DATA_BUCKET"))}
    environment.update(env or {})
    environment["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(LAYER)])
    return subprocess.run(
        [sys.executable, "-m", "xnat_upload.cli", *args],
        env=environment,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def no_traceback(proc: subprocess.CompletedProcess[str]) -> None:
    assert "Traceback" not in proc.stderr
    assert "Traceback" not in proc.stdout


@pytest.fixture
def running(stack: LocalStack) -> Iterator[LocalStack]:
    """The intake and the worker poll their queues, as Lambda does in AWS: a manifest put runs."""
    stack.start_pollers()
    yield stack
    stack.stop_pollers()
    assert stack.intake is not None and stack.worker is not None
    assert stack.intake.stats.errors == stack.worker.stats.errors == 0


def write_manifest(tmp_path: Path, name: str = "manifest.json", **overrides: Any) -> str:
    path = tmp_path / name
    path.write_text(json.dumps(make_manifest(**overrides)))
    return str(path)


# -- validate (offline) ---------------------------------------------------------------------------


def test_validate_accepts_the_sample_manifest() -> None:
    proc = run_cli("validate", str(ROOT / "events" / "manifest.json"))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "valid: 3 files"


def test_validate_lists_every_path_problem_and_exits_1(tmp_path: Path) -> None:
    path = write_manifest(tmp_path, files_relative_paths_to_upload=["../escape.nii", "a.nii", "A.nii", "ok.nii"])
    proc = run_cli("validate", path)
    assert proc.returncode == 1
    assert proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert any("'../escape.nii'" in line and ".." in line for line in lines)
    assert any("'A.nii' would be stored as the same file as 'a.nii'" in line for line in lines)
    assert lines[-1] == f"error: {path}: invalid manifest (2 problems)"
    no_traceback(proc)


def test_validate_refuses_bad_json_unknown_fields_and_unreadable_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    assert main(["validate", str(broken)]) == 1
    assert "manifest is not valid JSON" in capsys.readouterr().err

    assert main(["validate", write_manifest(tmp_path, "unknown.json", surprise=True)]) == 1
    assert "surprise: Extra inputs are not permitted" in capsys.readouterr().err

    oversized = write_manifest(tmp_path, "big.json", files_relative_paths_to_upload=[f"f{i}.nii" for i in range(50)])
    monkeypatch.setenv("MAX_MANIFEST_BYTES", "100")
    assert main(["validate", oversized]) == 1
    assert "manifest is larger than 100 bytes" in capsys.readouterr().err

    assert main(["validate", str(tmp_path / "absent.json")]) == 2
    assert (
        capsys.readouterr().err.strip() == f"error: cannot read {tmp_path / 'absent.json'}: No such file or directory"
    )

    with pytest.raises(SystemExit) as usage:
        main(["validate"])
    assert usage.value.code == 2


# -- submit, wait, status ---------------------------------------------------------------------------


def test_submit_wait_uploads_and_status_shows_the_table(
    stack: LocalStack, running: LocalStack, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    files = {"ct_scan.nii.gz": b"\x1f\x8b" + b"ct" * 5000, "seg/ct seg.nii.gz": b"segmentation"}
    for relative, data in files.items():
        stack.put_image("net-1", relative, data)
    manifest = write_manifest(tmp_path, files_relative_paths_to_upload=list(files))
    env = stack.environment()

    proc = run_cli(
        "submit", manifest, "--bucket", stack.bucket, "--job-id", "cli-ok", "--wait", "--poll-interval", "0.2",
        "--timeout", "30", env=env,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert lines[0] == "cli-ok"
    assert len(lines) == 3
    assert lines[1].endswith("/scans/1/resources/NIFTI/files/ct_scan.nii.gz")
    assert lines[2].endswith("/files/seg/ct%20seg.nii.gz")
    assert "job cli-ok succeeded: 2/2 files in XNAT" in proc.stderr
    for relative, data in files.items():
        assert stack.xnat.get_file(DEMO_PROJECT, DEMO_ACCESSION, "1", "NIFTI", relative) == data

    status = run_cli("status", "cli-ok", env=env)  # bucket from DATA_BUCKET
    assert status.returncode == 0, status.stderr
    table = status.stdout.strip().splitlines()
    assert table[0].split() == ["PATH", "STATUS", "BYTES", "ERROR", "OR", "URL"]
    assert table[1].split()[:2] == ["ct_scan.nii.gz", "uploaded"]
    assert "9.8 KiB" in table[1] and table[1].endswith(lines[1])
    assert table[2].startswith("seg/ct seg.nii.gz  uploaded")
    assert table[-1].startswith("job cli-ok succeeded: 2/2 files in XNAT")

    stack.stop_pollers()  # the functions print their metrics to this process's stdout: let them finish first
    capsys.readouterr()
    assert main(["status", "cli-ok", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["urls"] == lines[1:]

    assert main(["submit", manifest, "--job-id", "cli-ok"]) == 0  # the same manifest again: nothing new
    out, err = capsys.readouterr()
    assert out.strip() == "cli-ok"
    assert "already submitted" in err

    other = write_manifest(tmp_path, "other.json", exist_ok=True)
    assert main(["submit", other, "--job-id", "cli-ok"]) == 1
    assert capsys.readouterr().err.strip() == (
        "error: job 'cli-ok' was already submitted with a different manifest: use a new job ID "
        "(--job-id, or job_id in the request) for a different job"
    )


def test_a_job_with_a_failure_exits_1(stack: LocalStack, running: LocalStack, tmp_path: Path) -> None:
    stack.put_image("net-1", "a.nii", b"new a")
    stack.put_image("net-1", "b.nii", b"new b")
    stack.xnat.add_file(DEMO_PROJECT, DEMO_ACCESSION, "1", "NIFTI", "a.nii", b"an older a")
    manifest = write_manifest(tmp_path, files_relative_paths_to_upload=["a.nii", "b.nii"])
    env = stack.environment()

    proc = run_cli("submit", manifest, "--job-id", "cli-partial", "--wait", "--poll-interval", "0.2", env=env)
    assert proc.returncode == 1, proc.stderr
    out = proc.stdout.strip().splitlines()
    assert len(out) == 2 and out[0] == "cli-partial" and out[1].endswith("/files/b.nii")
    assert "a.nii: already_exists:" in proc.stderr
    assert "job cli-partial partial: 1/2 files in XNAT" in proc.stderr
    assert stack.xnat.get_file(DEMO_PROJECT, DEMO_ACCESSION, "1", "NIFTI", "a.nii") == b"an older a"

    status = run_cli("status", "cli-partial", env=env)
    assert status.returncode == 1
    assert any(line.startswith("a.nii") and "already_exists" in line for line in status.stdout.splitlines())


def test_a_failed_job_exits_1(stack: LocalStack, running: LocalStack, tmp_path: Path) -> None:
    missing = write_manifest(tmp_path, files_relative_paths_to_upload=["nowhere.nii"])
    argv = ["submit", missing, "--job-id", "cli-missing", "--wait", "--poll-interval", "0.2", "--timeout", "30"]
    proc = run_cli(*argv, env=stack.environment())
    assert proc.returncode == 1
    assert proc.stdout.strip() == "cli-missing"
    assert "job cli-missing failed" in proc.stderr and "object_not_found" in proc.stderr


def test_pending_job_status_and_wait_timeout(
    stack: LocalStack, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """No pollers: the manifest is put but nothing runs it."""
    argv = ["submit", write_manifest(tmp_path), "--job-id", "cli-slow", "--wait", "--timeout", "0.3"]
    assert main([*argv, "--poll-interval", "0.1"]) == 3
    out, err = capsys.readouterr()
    assert out.strip() == "cli-slow"
    assert "job cli-slow: queued: waiting for the job to start" in err  # not a TTY: plain lines
    assert "timed out after 0.3s" in err

    status = run_cli("status", "cli-slow", env=stack.environment())
    assert status.returncode == 4
    assert status.stdout.strip() == "queued: waiting for the job to start"

    version = stack.s3().head_object(Bucket=stack.bucket, Key="manifests/cli-slow.json")["VersionId"]
    ledger = ledger_for(Settings.from_env())
    ledger.open(JobRecord("cli-slow", version, files_total=4, bytes_total=4096))
    ledger.update("cli-slow", version, 0, state="running", files_done=1, bytes_done=1024, attempt=1)
    assert main(["status", "cli-slow"]) == 4
    assert capsys.readouterr().out.strip() == "running: 1/4 files, 1.0 KiB of 4.0 KiB, 0 failed"
    assert main(["status", "cli-slow", "--json"]) == 4
    shown = json.loads(capsys.readouterr().out)
    assert (shown["job_id"], shown["state"]) == ("cli-slow", "pending")
    assert {k: shown["progress"][k] for k in ("state", "files_done", "files_total")} == {
        "state": "running", "files_done": 1, "files_total": 4}  # fmt: skip

    retry_at = "2026-12-06T12:00:00+00:00"
    ledger.update("cli-slow", version, 0, state="waiting_for_xnat", retry_at=retry_at, attempt=3)
    assert main(["status", "cli-slow"]) == 4
    assert capsys.readouterr().out.strip() == (
        f"waiting_for_xnat: 1/4 files, 1.0 KiB of 4.0 KiB, 0 failed; XNAT unavailable, next try at {retry_at} "
        "(after delivery 3)"
    )


def test_jobs_lists_the_ledger_newest_first_and_status_problems_shows_only_files_not_in_xnat(
    stack: LocalStack, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    stack.put_image("net-1", "ct.nii", b"ct")
    stack.put_image("net-1", "seg.nii", b"ours")
    stack.xnat.add_file(DEMO_PROJECT, DEMO_ACCESSION, "1", "NIFTI", "seg.nii", b"theirs")
    for job_id, files in (("ok-1", ["ct.nii"]), ("bad-1", ["nowhere.nii"]), ("part-1", ["ct.nii", "seg.nii"])):
        stack.put_manifest(job_id, make_manifest(files_relative_paths_to_upload=files))
        stack.drain()
    capsys.readouterr()  # the functions' log lines

    proc = run_cli("jobs", "--status", "failed", "--since", "1d", env=stack.environment())
    assert proc.returncode == 0, proc.stderr
    header, row = proc.stdout.strip().splitlines()
    assert header.split() == ["JOB", "ID", "STATE", "FILES", "SUBMITTED", "SUBMITTED", "BY", "ERROR"]
    assert row.split()[:3] == ["bad-1", "finished/failed", "0/1"] and row.endswith("object_not_found")

    assert main(["jobs", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [job["job_id"] for job in listed["jobs"]] == ["part-1", "bad-1", "ok-1"] and listed["next"] is None
    assert main(["jobs", "--limit", "2"]) == 0
    *rows, more = capsys.readouterr().out.strip().splitlines()
    assert [r.split()[0] for r in rows[1:]] == ["part-1", "bad-1"] and more.startswith("(more: --next ")
    assert main(["jobs", "--next", more.removeprefix("(more: --next ").rstrip(")")]) == 0
    assert [r.split()[0] for r in capsys.readouterr().out.strip().splitlines()[1:]] == ["ok-1"]
    assert main(["jobs", "--state", "queued"]) == 0
    assert capsys.readouterr().out.strip() == "no jobs"

    assert main(["status", "part-1", "--problems"]) == 1
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 3 and lines[1].startswith("seg.nii") and "already_exists" in lines[1]
    assert lines[2].startswith("job part-1 partial: 1/2 files in XNAT")
    assert main(["status", "ok-1", "--problems"]) == 0
    assert capsys.readouterr().out.strip().splitlines() == ["job ok-1 succeeded: 1/1 files in XNAT (2 B); uploaded 1"]
    assert main(["status", "part-1", "--problems", "--json"]) == 1
    assert [f["path"] for f in json.loads(capsys.readouterr().out)["files"]] == ["seg.nii"]

    assert main(["jobs", "--next", "bm90LWEtdG9rZW4"]) == 2
    assert "--next" in capsys.readouterr().err
    with pytest.raises(SystemExit) as usage:
        main(["jobs", "--since", "yesterday"])
    assert usage.value.code == 2 and "not a time: 'yesterday'" in capsys.readouterr().err
    monkeypatch.delenv("JOBS_TABLE")
    assert main(["jobs"]) == 2
    assert capsys.readouterr().err.strip() == "error: no jobs table: set JOBS_TABLE (the stack's JobsTableName output)"


def test_since_takes_a_span_ago_or_an_iso_time() -> None:
    from datetime import UTC, datetime

    now = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)
    assert since_time("30m", now) == "2026-12-06T11:30:00.000+00:00"
    assert since_time("12h", now) == "2026-12-06T00:00:00.000+00:00"
    assert since_time("7d", now) == "2026-11-29T12:00:00.000+00:00"
    assert since_time("2026-12-01T08:00:00+02:00") == "2026-12-01T06:00:00.000+00:00"
    assert since_time("2026-12-01") == "2026-12-01T00:00:00.000+00:00"


def test_unknown_job_and_bad_job_id(stack: LocalStack, capsys: pytest.CaptureFixture[str]) -> None:
    proc = run_cli("status", "never-submitted", env=stack.environment())
    assert proc.returncode == 5
    assert proc.stderr.strip() == (
        f"unknown job 'never-submitted': no manifest and no result in s3://{stack.bucket} "
        "(check the job ID, and --bucket or DATA_BUCKET)"
    )

    assert main(["status", "../etc"]) == 2
    assert capsys.readouterr().err.startswith("error: job_id '../etc' must match")


def test_invalid_manifest_is_not_submitted(
    stack: LocalStack, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    manifest = write_manifest(tmp_path, files_relative_paths_to_upload=["/etc/passwd"])
    assert main(["submit", manifest, "--job-id", "cli-bad"]) == 1
    assert "is absolute" in capsys.readouterr().err
    assert stack.s3().list_objects_v2(Bucket=stack.bucket, Prefix="manifests/").get("KeyCount") == 0


# -- S3 problems: one line, no traceback ------------------------------------------------------------


def test_missing_bucket_is_one_line(stack: LocalStack, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    expected = "error: bucket 'no-such-bucket' does not exist (check --bucket or DATA_BUCKET)"
    proc = run_cli("submit", write_manifest(tmp_path), "--bucket", "no-such-bucket", env=stack.environment())
    assert proc.returncode == 6
    assert proc.stderr.splitlines() == [expected]
    no_traceback(proc)

    assert main(["status", "job-1", "--bucket", "no-such-bucket"]) == 6
    assert capsys.readouterr().err.splitlines() == [expected]


def test_unreachable_endpoint_and_missing_credentials(
    stack: LocalStack, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{sock.getsockname()[1]}"
    proc = run_cli("status", "job-1", env={**stack.environment(), "AWS_ENDPOINT_URL": closed, "AWS_MAX_ATTEMPTS": "1"})
    assert proc.returncode == 6
    assert proc.stderr.splitlines() == [
        f"error: could not connect to {closed}/{stack.bucket}/manifests/job-1.json "
        "(is AWS_ENDPOINT_URL right, and is the server running?)"
    ]
    no_traceback(proc)

    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    assert main(["submit", write_manifest(tmp_path)]) == 6
    assert capsys.readouterr().err.splitlines() == [
        "error: no AWS credentials found: set AWS_PROFILE, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
    ]


# -- rendering -----------------------------------------------------------------------------------


def test_human_bytes() -> None:
    assert [render.human_bytes(n) for n in (0, 1023, 1024, 1536, 5 * 1024**3, None, -1)] == [
        "0 B", "1023 B", "1.0 KiB", "1.5 KiB", "5.0 GiB", "-", "-",
    ]  # fmt: skip


def test_result_table_escapes_control_characters_and_summarises() -> None:
    result = {
        "job_id": "j1",
        "status": "partial",
        "urls": ["https://x/a.nii"],
        "files": [
            {"path": "a.nii", "status": "uploaded", "bytes": 2048, "url": "https://x/a.nii"},
            {"path": "b.nii", "status": "already_exists", "identical": True, "bytes": 10, "url": "https://x/b.nii"},
            {"path": "evil\x1b[2J.nii", "status": "rejected", "error": "bad\npath"},
        ],
    }
    lines = render.result_table(result).splitlines()
    assert len(lines) == 4
    assert lines[1] == f"{'a.nii':<15}  {'uploaded':<26}  2.0 KiB  https://x/a.nii"
    assert "already_exists (identical)" in lines[2]
    assert lines[3].startswith("evil\\x1b[2J.nii") and lines[3].endswith("bad\\npath")
    assert render.summary_line(result) == (
        "job j1 partial: 2/3 files in XNAT (2.0 KiB); already_exists 1, rejected 1, uploaded 1"
    )
    assert render.problem_lines(result) == ["evil\\x1b[2J.nii: rejected: bad\\npath"]
    assert render.summary_line(
        {"job_id": "j2", "status": "failed", "files": [], "error": {"code": "c", "message": "m"}}
    ) == ("job j2 failed: 0/0 files in XNAT (0 B); error c: m")


def test_progress_display_live_and_plain() -> None:
    live = io.StringIO()
    display = ProgressDisplay(live, live=True)
    display.update("1/3 files, long line")
    display.update("2/3 files")
    display.finish()
    assert live.getvalue() == "\r1/3 files, long line\r2/3 files           \n"

    plain = io.StringIO()
    display = ProgressDisplay(plain, live=False, heartbeat=30)
    clock = iter([0.0, 1.0, 2.0, 40.0])
    for text in ("a", "a", "b", "b"):
        display.update(text, clock=lambda: next(clock))
    display.finish()
    assert plain.getvalue() == "a\nb\nb\n"


def test_aws_error_message_for_refused_credentials_and_access_denied() -> None:
    from botocore.exceptions import ClientError

    refused = ClientError({"Error": {"Code": "InvalidAccessKeyId", "Message": "The key\nis wrong"}}, "PutObject")
    assert aws_error_message(refused, "b") == "AWS refused the credentials (InvalidAccessKeyId): The key\\nis wrong"
    denied = ClientError({"Error": {"Code": "AccessDenied", "Message": "Access Denied"}}, "GetObject")
    assert (
        aws_error_message(denied, "b")
        == "access denied to bucket 'b' (GetObject): check the credentials and their permissions"
    )
