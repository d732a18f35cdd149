"""No secret reaches a log line or a result manifest, even with every logger at DEBUG.

Secrets: the XNAT service password (the right one and a wrong one), the HTTP Basic credentials
built from them, and every JSESSIONID the XNAT emulator handed out. Logs: the Powertools logger's
JSON lines (its own stream), everything that propagates to the root logger (botocore, urllib3,
boto3 at DEBUG) and anything printed to stdout or stderr (metrics).
"""

from __future__ import annotations

import base64
import gzip
import io
import json
import logging
from collections.abc import Iterator

import pytest

from devserver.stack import JOBS_TABLE, LocalStack
from xnat_upload.observability import logger as powertools_logger

from .conftest import make_manifest

WRONG_PASSWORD = "wrong-Pa55word-that-must-not-leak"
THIRD_PARTY = ("botocore", "boto3", "urllib3", "s3transfer", "requests")


@pytest.fixture
def powertools_output(monkeypatch: pytest.MonkeyPatch) -> Iterator[io.StringIO]:
    """The Powertools logger at DEBUG, writing its JSON lines into a buffer for the test."""
    monkeypatch.setenv("POWERTOOLS_LOG_LEVEL", "DEBUG")
    handler = powertools_logger.registered_handler
    assert isinstance(handler, logging.StreamHandler)
    buffer = io.StringIO()
    previous_stream, previous_level = handler.setStream(buffer), powertools_logger.log_level
    powertools_logger.setLevel("DEBUG")
    try:
        yield buffer
    finally:
        handler.setStream(previous_stream)
        powertools_logger.setLevel(previous_level)


def secrets_of(stack: LocalStack) -> dict[str, str]:
    """The stack's secrets, and the wrong password these tests log in with (and its Basic credentials)."""
    wrong_basic = base64.b64encode(f"{stack.xnat_user}:{WRONG_PASSWORD}".encode()).decode()
    return {**stack.secrets(), "wrong password": WRONG_PASSWORD, "wrong basic": wrong_basic}


def test_no_password_basic_credentials_or_session_id_is_ever_logged_or_reported(
    stack: LocalStack,
    powertools_output: io.StringIO,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    caplog.set_level(logging.DEBUG)
    for name in THIRD_PARTY:
        caplog.set_level(logging.DEBUG, logger=name)
    monkeypatch.setenv("UPLOAD_MODE", "per_file")
    for path in ("a.nii", "b.nii", "c.nii"):
        stack.put_image("net-1", path, path.encode() * 2000)
    manifest = make_manifest(files_relative_paths_to_upload=["a.nii", "b.nii", "c.nii"])
    outputs: list[str] = []

    # 1. a job that succeeds, with a session that expires half-way (a re-login sends credentials again)
    stack.xnat.expire_sessions_after(1, method="PUT", path_contains="/files/")
    outputs.append(repr(stack.run("ok", manifest)))
    # 2. XNAT errors: a failed PUT, a dropped connection, a 401 that survives the re-login
    stack.xnat.fail_next(500, times=10, method="PUT", path_contains="a.nii", body="Internal error")
    stack.xnat.drop_connection_next(times=1, path_contains="b.nii")
    stack.xnat.fail_next(401, times=2, method="PUT", path_contains="c.nii")
    outputs.append(repr(stack.run("errors", {**manifest, "resource_id": "OTHER"})))
    # 3. wrong credentials
    monkeypatch.setenv("XNAT_SERVICE_PASSWORD", WRONG_PASSWORD)
    outputs.append(repr(stack.run("bad-auth", manifest)))

    results = {job: stack.read_result(job) for job in ("ok", "errors", "bad-auth")}
    assert results["ok"]["status"] == "succeeded"
    assert results["errors"]["status"] in ("partial", "failed")
    assert results["bad-auth"]["error"]["code"] == "xnat_auth_failed"
    assert len(stack.xnat.session_ids) >= 3, "the scenario really issued and renewed sessions"

    captured = capsys.readouterr()
    texts = {
        "powertools logger": powertools_output.getvalue(),
        "root logger": "\n".join(_render(record) for record in caplog.records),
        "stdout": captured.out,
        "stderr": captured.err,
        "handler return values": "\n".join(outputs),
        **{f"results/{job}.json": _raw_result(stack, job) for job in results},
        **{f"progress and checkpoint of {job}": _raw_state(stack, job) for job in results},
    }
    assert '"level":"DEBUG"' in texts["powertools logger"] or '"level":"INFO"' in texts["powertools logger"]
    assert any(r.name.startswith("urllib3") for r in caplog.records), "urllib3 debug logging was captured"
    for where, text in texts.items():
        for what, secret in secrets_of(stack).items():
            assert secret not in text, f"{what} appears in {where}"
        assert "Basic " not in text, f"an Authorization: Basic header appears in {where}"
        assert "JSESSIONID=" not in text, f"a session cookie appears in {where}"


def _render(record: logging.LogRecord) -> str:
    """Everything a handler could print: message, arguments, exception text, extra fields."""
    formatted = logging.Formatter("%(name)s %(levelname)s %(message)s").format(record)
    return f"{formatted} {record.__dict__!r}"


def _raw_state(stack: LocalStack, job: str) -> str:
    """What the job left for later invocations and for readers: its ledger item and its checkpoint."""
    item = stack.aws.client("dynamodb").get_item(TableName=JOBS_TABLE, Key={"job_id": {"S": job}})["Item"]
    checkpoint = stack.s3().get_object(Bucket=stack.bucket, Key=f"results/.checkpoints/{job}.json.gz")["Body"].read()
    return json.dumps(item) + gzip.decompress(checkpoint).decode()


def _raw_result(stack: LocalStack, job: str) -> str:
    return stack.s3().get_object(Bucket=stack.bucket, Key=f"results/{job}.json")["Body"].read().decode()


def test_an_error_page_that_echoes_the_request_leaks_nothing_into_results_logs_or_the_api_error(
    stack: LocalStack,
    powertools_output: io.StringIO,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """XNAT (CSRF check) and proxies can answer errors with every header and cookie they received."""
    from xnat_upload.api import upload_data_to_xnat
    from xnat_upload.aws import s3_client, sqs_client
    from xnat_upload.config import Settings
    from xnat_upload.exceptions import XnatUploadError
    from xnat_upload.job.queue import JobQueue

    caplog.set_level(logging.DEBUG)
    for name in THIRD_PARTY:
        caplog.set_level(logging.DEBUG, logger=name)
    monkeypatch.setenv("UPLOAD_MODE", "per_file")
    paths = ["a.nii", "b.nii", "c.nii"]
    for path in paths:
        stack.put_image("net-1", path, path.encode() * 2000)
    manifest = make_manifest(files_relative_paths_to_upload=paths)
    stack.xnat.echo_requests_in_errors()
    outputs: list[str] = []

    # 1. file PUTs answered with echoing error pages (session cookie in the request), retried and final
    stack.xnat.fail_next(500, times=10, method="PUT", path_contains="a.nii", body="Internal error")
    stack.xnat.fail_next(403, times=1, method="PUT", path_contains="b.nii", body="CSRF token check failed")
    outputs.append(repr(stack.run("echo-files", manifest)))
    # 2. the login answered with an echoing error page (Basic credentials in the request): the job waits,
    #    and the reason its ledger item gives quotes the page
    stack.xnat.fail_next(500, times=10, method="POST", path_contains="/data/JSESSION", body="Proxy error")
    outputs.append(repr(stack.run("echo-login", manifest)))
    # 3. a job-level failure on the scan, through the synchronous call behind the API's 502
    stack.xnat.clear_faults()
    stack.xnat.fail_next(409, times=1, method="PUT", path_contains="/scans/2", body="Conflict")
    settings = Settings.from_env()
    queue = JobQueue(sqs_client(settings), settings.require_job_queue())
    stack.start_pollers()
    try:
        with pytest.raises(XnatUploadError) as api_error:
            upload_data_to_xnat(
                "CHP-001", "ACC0001", "net-1", "2", "NIFTI", paths,
                settings=settings, s3=s3_client(settings), queue=queue, wait_seconds=30,
            )  # fmt: skip
    finally:
        stack.stop_pollers()
    outputs.append(f"{api_error.value.error_code} {api_error.value.message} {api_error.value.result!r}")

    results = {job: stack.read_result(job) for job in ("echo-files",)}
    files = {entry["path"]: entry for entry in results["echo-files"]["files"]}
    assert files["a.nii"]["status"] == files["b.nii"]["status"] == "failed"
    assert "Internal error" in files["a.nii"]["error"] and "CSRF token check failed" in files["b.nii"]["error"]
    waiting = stack.read_job("echo-login")
    assert waiting["state"] == "waiting_for_xnat" and "Proxy error" in waiting["error"]["message"]
    assert api_error.value.error_code == "xnat_error" and "Conflict" in api_error.value.message

    captured = capsys.readouterr()
    texts = {
        "powertools logger": powertools_output.getvalue(),
        "root logger": "\n".join(_render(record) for record in caplog.records),
        "stdout": captured.out,
        "stderr": captured.err,
        "handler return values and the API error": "\n".join(outputs),
        **{f"results/{job}.json": _raw_result(stack, job) for job in results},
        "progress of echo-login": json.dumps(waiting),
    }
    for where, text in texts.items():
        for what, secret in secrets_of(stack).items():
            assert secret not in text, f"{what} appears in {where}"
        assert "Basic " not in text, f"an Authorization: Basic header appears in {where}"
        assert "JSESSIONID=" not in text, f"a session cookie appears in {where}"
    assert "Cookie: [redacted]" in texts["results/echo-files.json"], "the echoed headers were there, redacted"
    assert "Authorization: [redacted]" in texts["progress of echo-login"]
