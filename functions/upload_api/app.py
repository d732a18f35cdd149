"""API Gateway routes: the seed's synchronous upload, asynchronous jobs, and the OpenAPI document.

No `from __future__ import annotations` here: Powertools reads the real annotations to validate.
Thin by design: Powertools validates the request, the core does the work, errors map once
(`XnatUploadError.http_status`) to a JSON error body. Nothing here talks to XNAT: every upload
goes through JobQueue.fifo, the synchronous route included (it waits for the result).
"""

import time
from typing import Annotated, Any, Literal

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response
from aws_lambda_powertools.event_handler.openapi.exceptions import RequestValidationError
from aws_lambda_powertools.event_handler.openapi.params import Body, Path, Query
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import BaseModel, ConfigDict, Field, StrictBool

from xnat_upload import Settings
from xnat_upload.api import upload_data_to_xnat
from xnat_upload.aws import s3_client, sqs_client
from xnat_upload.exceptions import JobStillRunningError, XnatUploadError
from xnat_upload.manifest.paths import IDENTIFIER_PATTERN
from xnat_upload.observability import logger, metrics, tracer
from xnat_upload.queue import JobQueue
from xnat_upload.store import JobStore
from xnat_upload.submission import JOB_ID_PATTERN, job_status, result_summary, submit_job

API_TITLE = "XNAT S3 uploader"
API_VERSION = "1.1.0"
SYNC_MARGIN_SECONDS = 3.0  # answer before API Gateway's limit cuts the connection
SUMMARY_AFTER_FILES = 1000  # an error body carries the whole result up to this many files, else its summary

app = APIGatewayRestResolver(enable_validation=True)

Identifier = Annotated[str, Field(min_length=1, max_length=255, pattern=IDENTIFIER_PATTERN)]


class UploadRequest(BaseModel):
    """The seed's request body for `PUT /upload/images/{net_id}`."""

    model_config = ConfigDict(extra="forbid")

    central_hub_project_id: Annotated[str, Field(min_length=1, max_length=255)]
    accession_id: Identifier
    scan_id: Identifier
    resource_id: Identifier
    files: Annotated[list[Annotated[str, Field(min_length=1, max_length=1024)]], Field(min_length=1)]
    exist_ok: StrictBool = False


class JobRequest(BaseModel):
    """A job manifest (the S3 manifest's fields), with an optional client-chosen `job_id`."""

    model_config = ConfigDict(extra="forbid")

    job_id: Annotated[str | None, Field(pattern=JOB_ID_PATTERN)] = None
    central_hub_project_id: Annotated[str, Field(min_length=1, max_length=255)]
    accession_id: Identifier
    net_id: Identifier
    scan_id: Identifier
    resource_id: Identifier
    files_relative_paths_to_upload: Annotated[
        list[Annotated[str, Field(min_length=1, max_length=1024)]], Field(min_length=1)
    ]
    exist_ok: StrictBool = False
    scan_xsi_type: str | None = None
    resource_format: Identifier | None = None
    resource_content: Identifier | None = None


def _settings() -> Settings:
    return Settings.from_env()


def _error(status: int, code: str, message: str, **extra: Any) -> Response:
    return Response(status, "application/json", body={"error": code, "message": message, **extra})


@app.put(
    "/upload/images/<net_id>",
    summary="Upload files through the job queue and return their XNAT URLs (the seed's route)",
    responses={
        200: {"description": "every file is in XNAT: their URLs, in request order"},
        202: {"description": "the job did not end in time; it keeps running: follow status_url"},
    },
)
@tracer.capture_method
def put_upload(
    net_id: Annotated[str, Path(pattern=IDENTIFIER_PATTERN)], request: Annotated[UploadRequest, Body()]
) -> Response[Any]:
    settings = _settings()
    started = time.monotonic()
    lambda_left = app.lambda_context.get_remaining_time_in_millis() / 1000 if app.lambda_context else float("inf")
    wait = min(settings.api_time_limit_seconds, lambda_left) - SYNC_MARGIN_SECONDS
    try:
        urls = upload_data_to_xnat(
            request.central_hub_project_id, request.accession_id, net_id, request.scan_id, request.resource_id,
            request.files, request.exist_ok,
            settings=settings, s3=s3_client(settings), queue=JobQueue(sqs_client(settings), settings.require_job_queue()),
            wait_seconds=max(0.0, wait - (time.monotonic() - started)),
        )  # fmt: skip
    except JobStillRunningError as running:
        return Response(
            202,
            "application/json",
            body={"job_id": running.job_id, "status": "running", "status_url": f"/jobs/{running.job_id}"},
            headers={"Location": f"/jobs/{running.job_id}"},
        )
    return Response(200, "application/json", body=urls)


@app.post(
    "/jobs", summary="Submit a job manifest; the S3 trigger runs it", responses={202: {"description": "accepted"}}
)
@tracer.capture_method
def post_job(request: Annotated[JobRequest, Body()]) -> Response[dict[str, Any]]:
    settings = _settings()
    data = request.model_dump(exclude_none=True)
    submission = submit_job(data, settings=settings, s3=s3_client(settings), job_id=data.pop("job_id", None))
    return Response(
        202,
        "application/json",
        body={
            "job_id": submission.job_id,
            "status": "resumed" if submission.resumed else "accepted" if submission.created else "already_submitted",
            "status_url": f"/jobs/{submission.job_id}",
            "manifest": f"s3://{settings.data_bucket}/{submission.manifest_key}",
        },
        headers={"Location": f"/jobs/{submission.job_id}"},
    )


@app.get(
    "/jobs/<job_id>",
    summary="The job's status: queued, running (with progress) or its result (summary + a page of files)",
    responses={
        200: {"description": "finished: the summary, where the full result lies, and a page of its files"},
        202: {"description": "queued, running or waiting_for_xnat, with progress"},
    },
)
@tracer.capture_method
def get_job(
    job_id: Annotated[str, Path(pattern=JOB_ID_PATTERN)],
    files: Annotated[Literal["problems", "all"], Query(description="which files to list")] = "problems",
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 500,
) -> Response[dict[str, Any]]:
    settings = _settings()
    s3 = s3_client(settings)
    state, document = job_status(job_id, settings=settings, s3=s3)
    if state == "pending":
        progress = document or {}
        return Response(
            202,
            "application/json",
            body={"job_id": job_id, "status": progress.get("state", "queued"), "progress": progress},
        )
    location = JobStore(s3, settings).result_location(job_id)
    body = result_summary(document or {}, location=location, files=files, offset=offset, limit=limit)
    return Response(200, "application/json", body=body)


@app.get("/openapi.json", summary="This API's OpenAPI document", include_in_schema=False)
def get_openapi() -> Response[str]:
    return Response(200, "application/json", body=openapi_document())


def openapi_document() -> str:
    return app.get_openapi_json_schema(
        title=API_TITLE, version=API_VERSION, description="Direct uploads into XNAT and job status; see README.md."
    )


@app.exception_handler(XnatUploadError)
def handle_upload_error(exc: XnatUploadError) -> Response:
    extra: dict[str, Any] = {}
    if exc.result is not None:
        result = exc.result
        if len(result.get("files", [])) > SUMMARY_AFTER_FILES:  # keep error bodies small, as GET /jobs does
            job_id = str(result.get("job_id"))
            location = JobStore(s3_client(_settings()), _settings()).result_location(job_id)
            result = result_summary(result, location=location)
        extra = {"job_id": exc.result.get("job_id"), "result": result}
    logger.info("request failed", extra={"error": exc.error_code, "status": exc.http_status})
    return _error(exc.http_status, exc.error_code, exc.message, **extra)


@app.exception_handler(Exception)
def handle_unexpected_error(exc: Exception) -> Response:
    """A bug: a JSON 500 instead of API Gateway's bare 502."""
    logger.exception("request crashed")
    return _error(500, "internal_error", f"unexpected {type(exc).__name__}; see the logs")


@app.exception_handler(RequestValidationError)
def handle_validation_error(exc: RequestValidationError) -> Response:
    problems = [
        {"loc": [str(p) for p in error.get("loc", ())], "msg": str(error.get("msg", ""))} for error in exc.errors()
    ]
    return _error(400, "invalid_request", "the request does not match the schema", problems=problems[:20])


@logger.inject_lambda_context(correlation_id_path="requestContext.requestId", clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
