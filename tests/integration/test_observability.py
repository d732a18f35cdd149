"""Operators get structured JSON logs (job id as correlation id, path on per-file lines) and EMF metrics."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from devserver.stack import LocalStack
from xnat_upload.observability import logger, metrics

from .conftest import make_manifest


def json_lines(text: str) -> list[dict]:
    lines = []
    for line in text.splitlines():
        if line.startswith("{"):
            try:
                lines.append(json.loads(line))
            except ValueError:
                continue
    return lines


@pytest.fixture
def job_output(stack: LocalStack, capsys: pytest.CaptureFixture[str]) -> Iterator[list[dict]]:
    """Log lines as Powertools formats them (same formatter, our own stream) plus stdout (EMF)."""
    stack.put_image("net-1", "a.nii", b"a" * 100)
    stack.put_image("net-1", "dir/b.nii", b"b" * 50)
    stack.xnat.fail_next(503, times=1, method="PUT", path_contains="/files/")
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logger.registered_formatter)
    logging.getLogger(logger.name).addHandler(handler)
    capsys.readouterr()
    try:
        stack.run("observed", make_manifest(files_relative_paths_to_upload=["a.nii", "dir/b.nii"]))
        yield json_lines(stream.getvalue()) + json_lines(capsys.readouterr().out)
    finally:
        logging.getLogger(logger.name).removeHandler(handler)


def test_every_log_line_carries_the_job_id_as_correlation_id(job_output: list[dict]) -> None:
    # S3's s3:TestEvent (sent once when the bucket's notification is set up) belongs to no job.
    logs = [line for line in job_output if "level" in line and line["message"] != "ignoring S3's test event"]
    assert logs
    assert {line.get("correlation_id") for line in logs} == {"observed"}
    assert all(line["service"] == "xnat-upload" for line in logs)


def test_each_file_gets_a_log_line_with_its_path_and_fate(job_output: list[dict]) -> None:
    per_file = {line["path"]: line for line in job_output if line.get("message", "").startswith("file ")}
    assert set(per_file) == {"a.nii", "dir/b.nii"}
    assert per_file["a.nii"]["status"] == "uploaded"
    assert per_file["dir/b.nii"]["bytes"] == 50


def test_retries_are_logged_without_secrets(job_output: list[dict]) -> None:
    retries = [line for line in job_output if line.get("message") == "XNAT call failed; retrying"]
    assert retries and retries[0]["reason"] == "XNAT answered 503"


def test_job_metrics_are_emitted_as_emf(job_output: list[dict]) -> None:
    intake = [line for line in job_output if "_aws" in line and "ManifestsQueued" in line]
    assert intake and intake[0]["ManifestsQueued"] == [1.0]
    emf = [line for line in job_output if "_aws" in line and "JobsSucceeded" in line]
    assert len(emf) == 1, "one data point per job, from the worker that finished it"
    names = {m["Name"] for m in emf[0]["_aws"]["CloudWatchMetrics"][0]["Metrics"]}
    assert names >= {
        "JobsSucceeded",
        "FilesUploaded",
        "FilesFailed",
        "FilesAlreadyExisting",
        "BytesUploaded",
        "JobDuration",
        "XnatRequests",
        "XnatRetries",
    }
    assert emf[0]["FilesUploaded"] == [2.0]
    assert emf[0]["BytesUploaded"] == [150.0]
    assert emf[0]["XnatRetries"] == [1.0]
    assert emf[0]["_aws"]["CloudWatchMetrics"][0]["Namespace"] == metrics.namespace
