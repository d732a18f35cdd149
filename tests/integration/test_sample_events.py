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


def test_the_sample_s3_event_runs_the_sample_manifest(stack: LocalStack) -> None:
    manifest = seed_sample_images(stack)
    event = load("s3_put_manifest.json")
    key = event["Records"][0]["s3"]["object"]["key"]
    assert event["Records"][0]["s3"]["bucket"]["name"] == stack.bucket
    stack.s3().put_object(Bucket=stack.bucket, Key=key, Body=json.dumps(manifest).encode())

    summary = stack.invoke_trigger(event)

    assert summary["jobs"][0]["status"] == "succeeded"
    assert len(stack.read_result("demo-job")["urls"]) == len(manifest["files_relative_paths_to_upload"])


def test_the_sample_api_events_drive_the_api_handler(stack: LocalStack) -> None:
    seed_sample_images(stack)
    app = load_handler_module("upload_api")

    def call(name: str) -> dict:
        return app.lambda_handler(load(name), LocalLambdaContext("upload-api", 29))

    upload = call("api_put_upload.json")
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
