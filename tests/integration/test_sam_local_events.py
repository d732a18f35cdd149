"""The sample events run through their handlers as `sam local invoke` runs them: configured by events/env.json only.

Each handler runs with exactly the environment its container would get (tests/sam_local.py: the variables the
template declares for the function, the env file's values over the template's, the SAM CLI's own AWS_* variables)
and nothing else the test set: every variable the configuration reads (xnat_upload/config.py), AWS_* and
POWERTOOLS_* are cleared first. The container-side addresses (host.docker.internal:4566 and :8080, make serve's
ports) are moved to this test's moto and XNAT emulator. What make serve prepares for sam local (devserver/serve.py)
is prepared here the same way: the worker's XNAT secret, the intake's idempotency table, the sample images.
Docker itself is not involved: the README's sam local commands are checked without it in tests/deploy.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from devserver.handlers import load_handler_module
from devserver.lambda_context import LocalLambdaContext
from devserver.serve import IDEMPOTENCY_TABLE, prepare_for_sam_local, seed_sample_images
from devserver.stack import LocalStack
from xnat_upload import config
from xnat_upload.aws import s3_client, sqs_client
from xnat_upload.job.idempotency import _persistence

from ..sam_local import (
    CONTAINER_S3,
    CONTAINER_XNAT,
    container_environment,
    load_env_file,
    load_template,
    on_loopback,
    session_variables,
)

EVENTS = Path(__file__).resolve().parents[2] / "events"
SAMPLE_JOB = "demo-job"  # the job of the sample intake event, job message and status request
CONFIGURATION = set(re.findall(r'"([A-Z][A-Z0-9_]+)"', Path(config.__file__).read_text(encoding="utf-8")))

Become = Callable[[str], dict[str, str]]


def event(name: str, **changes: Any) -> dict[str, Any]:
    return {**json.loads((EVENTS / name).read_text(encoding="utf-8")), **changes}


def status_request(job_id: str) -> dict[str, Any]:
    return event("api_get_job.json", path=f"/jobs/{job_id}", pathParameters={"job_id": job_id})


@pytest.fixture
def become(stack: LocalStack, monkeypatch: pytest.MonkeyPatch) -> Iterator[Become]:
    """`become(function)`: from now on, this process's environment is that function's container's, on loopback."""
    from aws_lambda_powertools.utilities import parameters

    prepare_for_sam_local(stack)
    seed_sample_images(stack)
    template, env_file = load_template(), load_env_file()
    addresses = {CONTAINER_S3: stack.aws.url, CONTAINER_XNAT: stack.xnat.url}

    def into(function: str) -> dict[str, str]:
        for name in list(os.environ):
            if name in CONFIGURATION or name.startswith(("AWS_", "POWERTOOLS_")):
                monkeypatch.delenv(name)
        environment = {
            **session_variables(),
            **on_loopback(container_environment(template, function, env_file), addresses),
        }
        for name, value in environment.items():
            monkeypatch.setenv(name, value)
        for cache in (s3_client, sqs_client, _persistence):
            cache.cache_clear()
        parameters.clear_caches()  # the secret and its client
        return environment

    yield into
    parameters.clear_caches()


def submit_sample_manifest(stack: LocalStack) -> None:
    """What `xnat-upload submit events/manifest.json --job-id demo-job` does (the README's first sam local step)."""
    body = (EVENTS / "manifest.json").read_bytes()
    stack.s3().put_object(Bucket=stack.bucket, Key=f"manifests/{SAMPLE_JOB}.json", Body=body)


def run_queues_as_containers(stack: LocalStack, become: Become) -> None:
    """Lambda's event source mappings, each invocation with its own function's container environment."""
    assert stack.intake is not None and stack.worker is not None
    while True:
        become("ManifestTriggerFunction")
        if stack.intake.poll_once():
            continue
        become("UploadWorkerFunction")
        if stack.worker.poll_once():
            continue
        return


def test_the_sample_intake_event_queues_the_sample_job(stack: LocalStack, become: Become) -> None:
    submit_sample_manifest(stack)
    become("ManifestTriggerFunction")
    app = load_handler_module("manifest_trigger")

    response = app.lambda_handler(event("sqs_intake_manifest.json"), LocalLambdaContext("manifest-trigger", 60))

    assert response == {"batchItemFailures": []}
    assert stack.queue_depth("jobs") == 1
    assert stack.read_job(SAMPLE_JOB)["state"] == "queued"
    records = stack.aws.client("dynamodb").scan(TableName=IDEMPOTENCY_TABLE)["Items"]
    assert len(records) == 1, "the intake deduplicates through the table the env file names"


def test_the_sample_job_message_uploads_the_sample_manifest_with_the_secrets_account(
    stack: LocalStack, become: Become
) -> None:
    submit_sample_manifest(stack)
    environment = become("UploadWorkerFunction")
    assert "XNAT_SERVICE_PASSWORD" not in environment
    app = load_handler_module("upload_worker")

    response = app.lambda_handler(event("sqs_job_message.json"), LocalLambdaContext("upload-worker", 900))

    assert response == {"batchItemFailures": []}
    result = stack.read_result(SAMPLE_JOB)
    assert result["status"] == "succeeded", result
    assert [url.startswith(f"{stack.xnat.url}/data/projects/PRJ001/") for url in result["urls"]] == [True] * 3
    assert stack.xnat.logins == 1


def test_the_sample_api_events_run_with_the_queue_flow_behind_them(stack: LocalStack, become: Become) -> None:
    submit_sample_manifest(stack)
    become("UploadApiFunction")
    app = load_handler_module("upload_api")

    # The upload route waits for a worker; with 3.5 s left it waits 0.5 s, then answers 202 with the job.
    upload = app.lambda_handler(event("api_put_upload.json"), LocalLambdaContext("upload-api", 3.5))
    posted = app.lambda_handler(event("api_post_job.json"), LocalLambdaContext("upload-api", 29))
    assert (upload["statusCode"], posted["statusCode"]) == (202, 202), (upload["body"], posted["body"])
    assert json.loads(posted["body"])["status"] == "accepted"
    queued = [json.loads(upload["body"])["job_id"], json.loads(posted["body"])["job_id"]]

    run_queues_as_containers(stack, become)
    become("UploadApiFunction")

    for job_id in (SAMPLE_JOB, *queued):
        request = event("api_get_job.json") if job_id == SAMPLE_JOB else status_request(job_id)
        status = app.lambda_handler(request, LocalLambdaContext("upload-api", 29))
        assert status["statusCode"] == 200, (job_id, status["body"])
        assert json.loads(status["body"])["status"] == "succeeded", job_id
