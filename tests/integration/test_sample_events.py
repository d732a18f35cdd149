"""The sample events in events/ (for `sam local invoke`) drive the real handlers end to end."""

from __future__ import annotations

import json
from pathlib import Path

from devserver.handlers import load_handler_module
from devserver.lambda_context import LocalLambdaContext
from devserver.stack import LocalStack

EVENTS = Path(__file__).resolve().parents[2] / "events"


def load(name: str) -> dict:
    return json.loads((EVENTS / name).read_text())


def seed_sample_images(stack: LocalStack) -> dict:
    manifest = load("manifest.json")
    for path in manifest["files_relative_paths_to_upload"]:
        stack.put_image(manifest["net_id"], path, f"sample {path}".encode())
    return manifest


def put_sample_manifest(stack: LocalStack, manifest: dict) -> None:
    event = load("s3_put_manifest.json")
    assert event["Records"][0]["s3"]["bucket"]["name"] == stack.bucket
    key = event["Records"][0]["s3"]["object"]["key"]
    stack.s3().put_object(Bucket=stack.bucket, Key=key, Body=json.dumps(manifest).encode())


def test_the_sample_intake_event_queues_the_sample_manifest(stack: LocalStack) -> None:
    manifest = seed_sample_images(stack)
    put_sample_manifest(stack, manifest)
    app = load_handler_module("manifest_trigger")

    response = app.lambda_handler(load("sqs_intake_manifest.json"), LocalLambdaContext("manifest-trigger", 60))

    assert response == {"batchItemFailures": []}
    stack.drain()
    assert len(stack.read_result("demo-job")["urls"]) == len(manifest["files_relative_paths_to_upload"])


def test_the_sample_job_message_runs_the_sample_manifest_in_the_worker(stack: LocalStack) -> None:
    manifest = seed_sample_images(stack)
    put_sample_manifest(stack, manifest)
    app = load_handler_module("upload_worker")

    response = app.lambda_handler(load("sqs_job_message.json"), LocalLambdaContext("upload-worker", 900))

    assert response == {"batchItemFailures": []}
    assert stack.read_result("demo-job")["status"] == "succeeded"


def test_the_sample_api_events_drive_the_api_handler(stack: LocalStack) -> None:
    seed_sample_images(stack)
    app = load_handler_module("upload_api")

    def call(name: str) -> dict:
        return app.lambda_handler(load(name), LocalLambdaContext("upload-api", 29))

    stack.start_pollers()  # the upload route waits for the worker
    try:
        upload = call("api_put_upload.json")
    finally:
        stack.stop_pollers()
    assert upload["statusCode"] == 200, upload["body"]
    assert json.loads(upload["body"])[0].endswith("/files/ct_scan.nii.gz")

    posted = call("api_post_job.json")
    assert posted["statusCode"] == 202
    job_id = json.loads(posted["body"])["job_id"]

    status = app.lambda_handler(
        {**load("api_get_job.json"), "path": f"/jobs/{job_id}", "pathParameters": {"job_id": job_id}},
        LocalLambdaContext("upload-api", 29),
    )
    assert status["statusCode"] == 202
    assert call("api_get_job.json")["statusCode"] == 404
