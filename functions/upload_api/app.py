"""API Gateway routes: the seed's synchronous upload, asynchronous jobs, and the OpenAPI document.

No `from __future__ import annotations` here: Powertools reads the real annotations to validate.
Thin by design: Powertools validates the request, the core does the work, errors map once
(`XnatUploadError.http_status`) to a JSON error body.
"""

import time
from dataclasses import replace
from typing import Annotated, Any

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response
from aws_lambda_powertools.event_handler.openapi.exceptions import RequestValidationError
from aws_lambda_powertools.event_handler.openapi.params import Body, Path
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import BaseModel, ConfigDict, Field, StrictBool

from xnat_upload import Settings
from xnat_upload.api import upload_data_to_xnat
from xnat_upload.aws import s3_client
from xnat_upload.exceptions import XnatUploadError
from xnat_upload.job import partial_result
from xnat_upload.manifest.paths import IDENTIFIER_PATTERN
from xnat_upload.observability import logger, metrics, tracer
from xnat_upload.submission import JOB_ID_PATTERN, job_status, submit_job

API_TITLE = "XNAT S3 uploader"
API_VERSION = "1.0.0"
SYNC_MARGIN_SECONDS = 3.0  # answer before API Gateway's limit cuts the connection

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


@app.put("/upload/images/<net_id>", summary="Upload files now and return their XNAT URLs (the seed's route)")
@tracer.capture_method
def put_upload(
    net_id: Annotated[str, Path(pattern=IDENTIFIER_PATTERN)], request: Annotated[UploadRequest, Body()]
) -> list[str]:
    settings = _settings()
    started = time.monotonic()
    deadline = settings.api_time_limit_seconds

    def remaining_seconds() -> float:
        api_left = deadline - (time.monotonic() - started)
        lambda_left = app.lambda_context.get_remaining_time_in_millis() / 1000 if app.lambda_context else api_left
        return min(api_left, lambda_left)

    return upload_data_to_xnat(
        request.central_hub_project_id, request.accession_id, net_id, request.scan_id, request.resource_id,
        request.files, request.exist_ok,
        settings=replace(settings, time_budget_margin_seconds=SYNC_MARGIN_SECONDS), s3=s3_client(settings),
        remaining_seconds=remaining_seconds,
    )  # fmt: skip


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


@app.get("/jobs/<job_id>", summary="The job's result manifest, or pending")
@tracer.capture_method
def get_job(job_id: Annotated[str, Path(pattern=JOB_ID_PATTERN)]) -> Response[dict[str, Any]]:
    settings = _settings()
    state, result = job_status(job_id, settings=settings, s3=s3_client(settings))
    if state == "pending":
        return Response(202, "application/json", body={"job_id": job_id, "status": "pending", "progress": result})
    return Response(200, "application/json", body=result)


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
        extra = {"job_id": exc.result.get("job_id"), "result": exc.result}
    message = exc.message
    if exc.http_status == 504:
        message += "; the API's time limit is too short for this job: submit it with POST /jobs instead"
    logger.info("request failed", extra={"error": exc.error_code, "status": exc.http_status})
    return _error(exc.http_status, exc.error_code, message, **extra)


@app.exception_handler(Exception)
def handle_unexpected_error(exc: Exception) -> Response:
    """A bug: a JSON 500 with what the job did until then, instead of API Gateway's bare 502."""
    logger.exception("request crashed")
    partial = partial_result(exc)
    extra = {"result": partial.to_dict()} if partial is not None else {}
    return _error(500, "internal_error", f"unexpected {type(exc).__name__}; see the logs", **extra)


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
