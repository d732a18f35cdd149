"""API Gateway routes: the seed's synchronous upload, asynchronous jobs, and the OpenAPI document.

No `from __future__ import annotations` here: Powertools reads the real annotations to validate.
Thin by design: Powertools validates the request, the core does the work, errors map once
(`XnatUploadError.http_status`) to a JSON error body. Nothing here talks to XNAT: every upload
goes through JobQueue.fifo, the synchronous route included (it waits for the result).

The OpenAPI document says what each operation accepts and answers, and the tests hold the API to it
(schemathesis, tests/integration/test_api_conformance.py). What JSON Schema cannot say (paths that
collide, the size of the stored manifest) is in the descriptions, and the core refuses it with the
intake's own error codes (`validated_manifest`).
"""

import base64
import json
import time
from copy import deepcopy
from functools import cache
from typing import Annotated, Any, Literal

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response
from aws_lambda_powertools.event_handler.exceptions import NotFoundError
from aws_lambda_powertools.event_handler.middlewares.openapi_validation import OpenAPIRequestValidationMiddleware
from aws_lambda_powertools.event_handler.openapi.exceptions import RequestValidationError
from aws_lambda_powertools.event_handler.openapi.params import Body, Path, Query
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import BaseModel, ConfigDict, Field, StrictBool

from xnat_upload import Settings, safe_json
from xnat_upload.api import upload_data_to_xnat
from xnat_upload.aws import s3_client, sqs_client
from xnat_upload.clipping import clip
from xnat_upload.config import DEFAULT_MAX_MANIFEST_BYTES, DEFAULT_MAX_MANIFEST_FILES
from xnat_upload.exceptions import (
    ConfigurationError,
    InternalError,
    InvalidRequestError,
    JobStillRunningError,
    MethodNotAllowedError,
    RouteNotFoundError,
    UnsupportedMediaTypeError,
    XnatUploadError,
    error_codes_by_status,
)
from xnat_upload.job.ledger import JobRecord, ledger_for
from xnat_upload.job.queue import JobQueue
from xnat_upload.manifest.models import (
    IDENTIFIER_MAX_LENGTH,
    NOT_DOT_SEGMENT,
    QUOTED_NAME_MAX_CHARS,
    DocumentedPath,
    Identifier,
    ProjectRef,
    ScanType,
)
from xnat_upload.manifest.paths import IDENTIFIER_PATTERN
from xnat_upload.observability import logger, metrics, tracer
from xnat_upload.store import JobStore
from xnat_upload.submission import (
    JOB_ID_NOT_JSON,
    JOB_ID_PATTERN,
    find_job,
    finished_summary,
    ledger_time,
    parse_timestamp,
    result_summary,
    submit_job,
)

API_TITLE = "XNAT S3 uploader"
API_VERSION = "1.3.0"
SYNC_MARGIN_SECONDS = 3.0  # answer before API Gateway's limit cuts the connection
SUMMARY_AFTER_FILES = 1000  # an error body carries the whole result up to this many files, else its summary
LIST_MAX_BYTES = 900_000  # a page of GET /jobs stays under 1 MB of JSON, whatever its jobs hold
LIST_TEXT_MAX_CHARS = 500  # a listed job's error message and submitter (GET /jobs/{id} has them whole)
# An ISO-8601 date or date-time, extended format, optional seconds, fraction and offset (no offset: UTC).
TIMESTAMP_PATTERN = (
    r"^[0-9]{4}-[0-9]{2}-[0-9]{2}([T ][0-9]{2}:[0-9]{2}(:[0-9]{2}([.,][0-9]{1,6})?)?(Z|[+-][0-9]{2}:[0-9]{2})?)?$"
)
PAGE_TOKEN_PATTERN = r"^[A-Za-z0-9_-]+={0,2}$"
JSON = "application/json"


# -- requests ---------------------------------------------------------------------------------------

PATHS_DESCRIPTION = (
    "at most MAX_MANIFEST_FILES paths (maxItems: this deployment's value). No two may name one file once "
    "case is folded, nor may one be a folder of another (`a` and `a/b`): refused as path_collision. A path "
    "the pattern refuses is key_outside_prefix; too many paths, or a manifest stored larger than "
    "MAX_MANIFEST_BYTES, invalid_manifest: the intake's own checks and codes."
)
RequestedPaths = Annotated[
    list[DocumentedPath], Field(min_length=1, json_schema_extra={"uniqueItems": True, "description": PATHS_DESCRIPTION})
]


class UploadRequest(BaseModel):
    """The seed's request body for `PUT /upload/images/{net_id}`."""

    model_config = ConfigDict(extra="forbid")

    central_hub_project_id: ProjectRef
    accession_id: Identifier
    scan_id: Identifier
    resource_id: Identifier
    files: RequestedPaths
    exist_ok: StrictBool = False


class JobRequest(BaseModel):
    """A job manifest (the S3 manifest's fields), with an optional client-chosen `job_id`."""

    model_config = ConfigDict(extra="forbid")

    job_id: Annotated[str, Field(pattern=JOB_ID_PATTERN, json_schema_extra=JOB_ID_NOT_JSON)] | None = None
    central_hub_project_id: ProjectRef
    accession_id: Identifier
    net_id: Identifier
    scan_id: Identifier
    resource_id: Identifier
    files_relative_paths_to_upload: RequestedPaths
    exist_ok: StrictBool = False
    scan_xsi_type: ScanType | None = None
    resource_format: Identifier | None = None
    resource_content: Identifier | None = None
    mode: Literal["upload", "check"] | None = Field(
        default=None, description='"check": compare with what XNAT holds and write nothing to XNAT (default "upload")'
    )


# The demo of README's quickstart (`make serve` seeds the project and session).
DEMO_UPLOAD = {
    "central_hub_project_id": "CHP-001",
    "accession_id": "ACC0001",
    "scan_id": "1",
    "resource_id": "NIFTI",
    "files": ["ct_scan.nii.gz"],
    "exist_ok": False,
}
DEMO_JOB = {
    "central_hub_project_id": "CHP-001",
    "accession_id": "ACC0001",
    "net_id": "net-1",
    "scan_id": "1",
    "resource_id": "NIFTI",
    "files_relative_paths_to_upload": ["ct_scan.nii.gz", "seg/ct seg.nii.gz"],
}

NetId = Annotated[
    str,
    Path(
        pattern=IDENTIFIER_PATTERN,
        min_length=1,
        max_length=IDENTIFIER_MAX_LENGTH,
        json_schema_extra=NOT_DOT_SEGMENT,
        description="the net whose images are read: <IMAGES_PREFIX><net_id>/upload/",
        openapi_examples={"demo": {"value": "net-1"}},
    ),
]
JobId = Annotated[str, Path(pattern=JOB_ID_PATTERN, json_schema_extra=JOB_ID_NOT_JSON)]
ListLimit = Annotated[int, Query(ge=1, le=1000, description="jobs per page at most (and ~900 KB)")]
StatusFilter = Annotated[
    Literal["succeeded", "partial", "failed"], Query(description="only finished jobs that ended so")
]
StateFilter = Annotated[
    Literal["queued", "running", "waiting_for_xnat", "finished"], Query(description="only jobs there now")
]
SinceFilter = Annotated[
    str,
    Query(
        pattern=TIMESTAMP_PATTERN,
        max_length=40,
        description="only jobs submitted at or after this ISO-8601 time (e.g. 2026-12-01T08:00:00Z; no offset: "
        "UTC); a date that does not exist is 400 invalid_request",
    ),
]
PageToken = Annotated[
    str, Query(alias="next", pattern=PAGE_TOKEN_PATTERN, max_length=4096, description="the last page's `next`")
]


# -- answers (for the document: the handlers build plain dicts, checked against these by the tests) ---


class Problem(BaseModel):
    loc: list[str]
    msg: str


class ErrorBody(BaseModel):
    """Every error has this shape: `error` is one code per error type (README, "API")."""

    model_config = ConfigDict(extra="forbid")

    error: str
    message: str
    job_id: str | None = Field(None, description="the job whose result this is")
    result: dict[str, Any] | None = Field(None, description="its result manifest (its summary past 1,000 files)")
    problems: list[Problem] | None = Field(None, description="invalid_request: what does not match, first 20")


class JobRunning(BaseModel):
    model_config = ConfigDict(extra="forbid")

    job_id: str
    status: Literal["running"]
    status_url: str


class JobAccepted(BaseModel):
    model_config = ConfigDict(extra="forbid")

    job_id: str
    status: Literal["accepted", "already_submitted", "resumed"]
    status_url: str
    manifest: str = Field(description="s3:// URL of the stored manifest")


class JobPending(BaseModel):
    model_config = ConfigDict(extra="forbid")

    job_id: str
    status: Literal["queued", "running", "waiting_for_xnat"]
    progress: dict[str, Any]


class JobError(BaseModel):
    code: str
    message: str


class FileEntry(BaseModel):
    """One requested file's fate (README, "Result manifest")."""

    model_config = ConfigDict(extra="allow")

    path: str
    status: Literal[
        "uploaded", "already_exists", "failed", "rejected", "missing", "skipped", "pending",
        "in_xnat", "different", "source_missing",
    ]  # fmt: skip
    url: str | None = None
    bytes: int | None = None
    md5: str | None = None
    error: str | None = None
    error_code: str | None = None
    identical: bool | None = None
    verified: Literal["md5", "size"] | None = Field(
        default=None, description="how XNAT's copy was checked: its digest (md5) or, with no digest listed, its size"
    )
    attempts: int | None = None
    clipped: bool | None = Field(
        default=None, description="true when a long path or error was shortened here; the full result keeps it whole"
    )


class JobSummary(BaseModel):
    """A finished job: its summary, where its full result lies, and one page of its files."""

    model_config = ConfigDict(extra="forbid")

    job_id: str | None
    manifest_version: str | None = None
    status: Literal["succeeded", "partial", "failed"]
    state: Literal["finished"] | None = Field(None, description="from the jobs ledger (absent for older jobs)")
    mode: Literal["upload", "check"] | None = None
    counts: dict[str, int]
    error: JobError | None = None
    upload_mode: str | None = None
    xnat: dict[str, Any] | None = None
    submitted_by: str | None = None
    submitted_at: str | None = None
    started_at: str | None = None
    finished_at: str | None = None
    duration_seconds: float | None = None
    invocations: int | None = None
    verified: dict[str, int] | None = Field(default=None, description="files in XNAT by verification level")
    mode: Literal["upload", "check"] | None = None
    xnat_missing: list[str] | None = Field(default=None, description="check mode: XNAT objects that do not exist")
    files_total: int | None = None
    files_done: int | None = Field(None, description="files in XNAT as requested")
    files_failed: int | None = None
    bytes_total: int | None = None
    bytes_done: int | None = None
    given_up: bool | None = Field(None, description="ended because its message went to the dead-letter queue")
    result_location: str
    files_filter: Literal["problems", "all"]
    files_matching: int
    offset: int
    files: list[FileEntry]
    next_offset: int | None


class JobListEntry(BaseModel):
    """One job as the jobs ledger lists it (README, "Operations"): where it is, how it ended, who asked."""

    model_config = ConfigDict(extra="forbid")

    job_id: str
    manifest_version: str | None = None
    state: Literal["queued", "running", "waiting_for_xnat", "finished"]
    status: Literal["succeeded", "partial", "failed"] | None = Field(None, description="only when finished")
    mode: Literal["upload", "check"] | None = None
    net_id: str | None = None
    xnat: dict[str, str] | None = Field(None, description="the manifest's project, session, scan, resource")
    counts: dict[str, int]
    files_total: int
    files_done: int = Field(description="files in XNAT as requested")
    files_failed: int
    bytes_total: int
    bytes_done: int
    submitted_by: str | None = None
    submitted_at: str | None = None
    updated_at: str | None = None
    started_at: str | None = None
    finished_at: str | None = None
    invocations: int | None = None
    upload_mode: str | None = None
    error: JobError | None = Field(None, description="its message clipped to 500 characters here")
    continuation: int | None = None
    attempt: int | None = None
    retry_at: str | None = Field(None, description="waiting_for_xnat: when the next delivery comes")
    result_key: str | None = None
    given_up: bool | None = None


class JobList(BaseModel):
    """A page of jobs, newest first (by submission); `next` pages on, null on the last page."""

    model_config = ConfigDict(extra="forbid")

    jobs: list[JobListEntry]
    next: str | None


def _answer(description: str, model: Any, headers: dict[str, Any] | None = None) -> dict[str, Any]:
    answer: dict[str, Any] = {"description": description, "content": {JSON: {"model": model}}}
    if headers:
        answer["headers"] = headers
    return answer


def _errors(codes_by_status: dict[int, list[str]]) -> dict[int, dict[str, Any]]:
    return {status: _answer("error codes: " + ", ".join(codes), ErrorBody) for status, codes in codes_by_status.items()}


LOCATION = {"Location": {"description": "status_url", "required": True, "schema": {"type": "string"}}}
BODY_REFUSED = {
    400: ["invalid_request", "invalid_manifest", "key_outside_prefix", "path_collision"],
    415: ["unsupported_media_type"],
}
UNEXPECTED = {500: ["configuration_error", "internal_error"]}
# The synchronous route answers with whatever ended the job: any error type (405 is never an operation's).
SYNC_ERRORS = {status: codes for status, codes in error_codes_by_status().items() if status != 405}


# -- the body this API reads --------------------------------------------------------------------------


class JsonBodyValidation(OpenAPIRequestValidationMiddleware):
    """Powertools' request validation, reading bodies as this API takes them: `application/json` only
    (no Content-Type means JSON, as API Gateway assumes; anything else is 415, forms included), UTF-8,
    decoded by `safe_json`, so that bytes that are not JSON or nest thousands deep are a 400, never a 500."""

    def _get_body(self, app: Any) -> Any:
        event = app.current_event
        media_type = (event.headers.get("content-type") or JSON).split(";")[0].strip().lower()
        if media_type != JSON:
            raise UnsupportedMediaTypeError(
                f"the body must be {JSON}, not {media_type or 'an empty Content-Type'}: send the header "
                f"'Content-Type: {JSON}' (curl: -H 'Content-Type: {JSON}')"
            )
        if not event.body:
            return None
        try:
            text = base64.b64decode(event.body).decode() if event.is_base64_encoded else event.body
            return safe_json.loads(text)
        except ValueError as exc:  # bad base64, not UTF-8, not JSON, nested too deeply: all ValueErrors
            raise RequestValidationError(
                [{"type": "json_invalid", "loc": ("body",), "msg": f"the body is not UTF-8 JSON: {exc}"}]
            ) from None


app = APIGatewayRestResolver(enable_validation=True)
# Powertools runs its request validation before any middleware of ours, and reads the body inside it:
# its body reader is the one place to decide on the media type and on bytes that are not JSON.
app._request_validation_middleware = JsonBodyValidation()


def _settings() -> Settings:
    return Settings.from_env()


def _caller() -> str | None:
    """The signed caller's ARN (AWS_IAM authorization), for the ledger's `submitted_by`."""
    identity = app.current_event.request_context.identity
    return identity.user_arn or identity.caller or None


def _base_path() -> str:
    """The part of the caller's URL before this API's own path: `/v1` behind API Gateway's stage
    (its `requestContext.path` is the path as requested, the event's `path` the resource's), a
    custom domain's base path behind one, nothing when called without either (sam local)."""
    event = app.current_event
    requested = event.request_context.path or ""
    own = event.path or ""
    if own and requested.endswith(own):
        return requested[: len(requested) - len(own)].rstrip("/")
    stage = event.request_context.stage
    return f"/{stage}" if stage and stage != "$default" and not requested else ""


def _status_url(job_id: str, settings: Settings) -> str:
    """Where the caller follows the job: a path it can append to the API's host as it is; a net's
    own route when jobs are confined to nets (job `net-1/ab12` -> `/nets/net-1/jobs/ab12`)."""
    net = settings.net_of(job_id)
    if net:
        return f"{_base_path()}/nets/{net}/jobs/{job_id[len(net) + 1 :]}"
    return f"{_base_path()}/jobs/{job_id}"


# -- routes -------------------------------------------------------------------------------------------


@app.put(
    "/upload/images/<net_id>",
    summary="Upload files through the job queue and return their XNAT URLs (the seed's route)",
    description="Validated as the intake validates, stored as manifests/sync-<id>.json, queued behind other "
    "writers of the same XNAT resource, then awaited until API_TIME_LIMIT_SECONDS - 3 s.",
    responses={
        200: _answer("every file is in XNAT: their URLs, in request order", list[str]),
        202: _answer("the job did not end in time; it keeps running: follow status_url", JobRunning, LOCATION),
        **_errors(SYNC_ERRORS),
    },
)
@tracer.capture_method
def put_upload(
    net_id: NetId, request: Annotated[UploadRequest, Body(openapi_examples={"demo": {"value": DEMO_UPLOAD}})]
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
            wait_seconds=max(0.0, wait - (time.monotonic() - started)), submitted_by=_caller(),
        )  # fmt: skip
    except JobStillRunningError as running:
        return Response(
            202,
            JSON,
            body={"job_id": running.job_id, "status": "running", "status_url": _status_url(running.job_id, settings)},
            headers={"Location": _status_url(running.job_id, settings)},
        )
    return Response(200, JSON, body=urls)


NET_ROUTES = (
    " With CONFINE_TO_NET on, this deployment's jobs belong to nets: `POST /jobs` is refused (403 net_mismatch) and "
    "a job is submitted and read on its net's routes (`/nets/{net_id}/jobs`), which IAM can grant net by net."
)
JOB_REFUSED = {**BODY_REFUSED, 403: ["net_mismatch"], 409: ["job_conflict"], **UNEXPECTED}
STATUS_ERRORS = {400: ["invalid_request", "invalid_manifest"], 404: ["job_not_found", "not_found"], **UNEXPECTED}
FilesFilterQuery = Annotated[Literal["problems", "all"], Query(description="which files to list")]
OffsetQuery = Annotated[int, Query(ge=0, le=1_000_000, description="the first file of the page")]
LimitQuery = Annotated[int, Query(ge=1, le=1000, description="files per page at most (and ~900 KB)")]


@app.post(
    "/jobs",
    summary="Submit a job manifest; the S3 trigger runs it",
    description="Validated fully (what the intake would refuse is refused now, with its error code), then "
    "stored as manifests/<job_id>.json once. The same job_id with the same manifest is idempotent, and resumes "
    "a job that ended partial or failed; with another manifest it is 409." + NET_ROUTES,
    responses={
        202: _answer("accepted, already submitted, or resumed: follow status_url", JobAccepted, LOCATION),
        **_errors(JOB_REFUSED),
    },
)
@tracer.capture_method
def post_job(
    request: Annotated[JobRequest, Body(openapi_examples={"demo": {"value": DEMO_JOB}})],
) -> Response[dict[str, Any]]:
    return _submit(request, net_id=None)


@app.post(
    "/nets/<net_id>/jobs",
    summary="Submit a job manifest of this net (its net_id must be the path's); the S3 trigger runs it",
    description="As `POST /jobs`, for callers that IAM confines to one net's routes: a manifest naming another "
    "net is 403 net_mismatch. With CONFINE_TO_NET on it is stored as manifests/<net_id>/<job_id>.json and its "
    "job ID is `<net_id>/<job_id>`.",
    responses={
        202: _answer("accepted, already submitted, or resumed: follow status_url", JobAccepted, LOCATION),
        # A net_id the path pattern refuses matches no route: 404 not_found, as API Gateway would answer.
        **_errors({**JOB_REFUSED, 404: ["not_found"]}),
    },
)
@tracer.capture_method
def post_net_job(
    net_id: NetId,
    request: Annotated[JobRequest, Body(openapi_examples={"demo": {"value": DEMO_JOB}})],
) -> Response[dict[str, Any]]:
    return _submit(request, net_id=net_id)


def _submit(request: JobRequest, net_id: str | None) -> Response[dict[str, Any]]:
    settings = _settings()
    data = request.model_dump(exclude_none=True)
    job_id = data.pop("job_id", None)
    submission = submit_job(
        data, settings=settings, s3=s3_client(settings), job_id=job_id, net_id=net_id, submitted_by=_caller()
    )
    return Response(
        202,
        JSON,
        body={
            "job_id": submission.job_id,
            "status": "resumed" if submission.resumed else "accepted" if submission.created else "already_submitted",
            "status_url": _status_url(submission.job_id, settings),
            "manifest": f"s3://{settings.data_bucket}/{submission.manifest_key}",
        },
        headers={"Location": _status_url(submission.job_id, settings)},
    )


@app.get(
    "/jobs",
    summary="List jobs, newest first, from the jobs ledger: filter by status, state and submission time",
    description="Reads the jobs ledger (DynamoDB), never the results: one page of at most `limit` jobs "
    "(and ~900 KB), newest first, and `next`, the token of the following page (null on the last). Pass "
    "`next` back with the same filters; anything else given as `next` is 400 invalid_request.",
    responses={
        200: _answer("a page of jobs and the token of the next page", JobList),
        **_errors({400: ["invalid_request"], **UNEXPECTED}),
    },
)
@tracer.capture_method
def list_jobs(  # a filter left out is None (the document states each as the values it takes)
    status: StatusFilter = None,
    state: StateFilter = None,
    since: SinceFilter = None,
    limit: ListLimit = 50,
    next_token: PageToken = None,
) -> Response[dict[str, Any]]:
    return _list(None, status, state, since, limit, next_token)


@app.get(
    "/nets/<net_id>/jobs",
    summary="List this net's jobs, newest first, from the jobs ledger (as GET /jobs, for one net)",
    description="As `GET /jobs`, for callers that IAM confines to one net's routes: only the jobs whose manifest "
    "names this net.",
    responses={
        200: _answer("a page of this net's jobs and the token of the next page", JobList),
        **_errors({400: ["invalid_request"], 404: ["not_found"], **UNEXPECTED}),
    },
)
@tracer.capture_method
def list_net_jobs(
    net_id: NetId,
    status: StatusFilter = None,
    state: StateFilter = None,
    since: SinceFilter = None,
    limit: ListLimit = 50,
    next_token: PageToken = None,
) -> Response[dict[str, Any]]:
    return _list(net_id, status, state, since, limit, next_token)


def _list(
    net_id: str | None, status: Any, state: Any, since: str | None, limit: int, next_token: str | None
) -> Response[dict[str, Any]]:
    settings = _settings()
    if not settings.jobs_table:
        raise ConfigurationError("JOBS_TABLE is not set: there is no jobs ledger to list")
    try:
        start = ledger_time(parse_timestamp(since)) if since else None
    except ValueError:
        raise InvalidRequestError(f"since {since!r} is not an ISO-8601 time") from None
    ledger = ledger_for(settings)
    while True:
        records, following = ledger.list_jobs(
            status=status, state=state, since=start, limit=limit, next_token=next_token, net_id=net_id
        )
        entries = [_listed(record) for record in records]
        fitting = _fitting(entries)
        if fitting == len(entries):
            return Response(200, JSON, body={"jobs": entries, "next": following})
        limit = fitting  # the same page, fewer jobs: the ledger's token then says where exactly it stopped


def _listed(record: JobRecord) -> dict[str, Any]:
    """A job as GET /jobs lists it: the ledger's summary, in the documented fields, long texts clipped."""
    entry = {name: value for name, value in record.summary().items() if name in JobListEntry.model_fields}
    entry["manifest_version"] = record.manifest_version or None
    if isinstance(record.error, dict):
        entry["error"] = {**record.error, "message": clip(str(record.error.get("message", "")), LIST_TEXT_MAX_CHARS)}
    if record.submitted_by:
        entry["submitted_by"] = clip(record.submitted_by, LIST_TEXT_MAX_CHARS)
    return {name: value for name, value in entry.items() if value is not None}


def _fitting(entries: list[dict[str, Any]]) -> int:
    """How many of the entries fit in one page of LIST_MAX_BYTES (at least one)."""
    size = 0
    for count, entry in enumerate(entries):
        size += len(json.dumps(entry)) + 2
        if size > LIST_MAX_BYTES:
            return max(1, count)
    return len(entries)


@app.get(
    "/jobs/<job_id>",
    summary="The job's status: queued, running (with progress) or its result (summary + a page of files)",
    responses={
        200: _answer("finished: the summary, where the full result lies, and a page of its files", JobSummary),
        202: _answer("queued, running or waiting_for_xnat, with progress", JobPending),
        **_errors(STATUS_ERRORS),
    },
)
@tracer.capture_method
def get_job(
    job_id: JobId, files: FilesFilterQuery = "problems", offset: OffsetQuery = 0, limit: LimitQuery = 500
) -> Response[dict[str, Any]]:
    return _status(job_id, None, files, offset, limit)


@app.get(
    "/nets/<net_id>/jobs/<job_id>",
    summary="The status of a job of this net (with CONFINE_TO_NET on, the job `<net_id>/<job_id>`)",
    responses={
        200: _answer("finished: the summary, where the full result lies, and a page of its files", JobSummary),
        202: _answer("queued, running or waiting_for_xnat, with progress", JobPending),
        **_errors(STATUS_ERRORS),
    },
)
@tracer.capture_method
def get_net_job(
    net_id: NetId, job_id: JobId, files: FilesFilterQuery = "problems", offset: OffsetQuery = 0, limit: LimitQuery = 500
) -> Response[dict[str, Any]]:
    return _status(job_id, net_id, files, offset, limit)


def _status(job_id: str, net_id: str | None, files: Any, offset: int, limit: int) -> Response[dict[str, Any]]:
    settings = _settings()
    s3 = s3_client(settings)
    store = JobStore(s3, settings)
    job = find_job(job_id, settings=settings, s3=s3, net_id=net_id)
    job_id = job.job_id
    if job.pending is not None:
        progress = job.pending
        return Response(
            202, JSON, body={"job_id": job_id, "status": progress.get("state", "queued"), "progress": progress}
        )
    if job.record is not None:  # the ledger answers; the result is read only for a page of files to show
        body = finished_summary(job.record, store=store, files=files, offset=offset, limit=limit)
    else:
        location = store.result_location(job_id)
        body = result_summary(job.result or {}, location=location, files=files, offset=offset, limit=limit)
    return Response(200, JSON, body=body)


@app.get("/openapi.json", summary="This API's OpenAPI document", include_in_schema=False)
def get_openapi() -> Response[str]:
    settings = _settings()
    return Response(200, JSON, body=openapi_document(settings.max_manifest_files, settings.max_manifest_bytes))


# -- the document ---------------------------------------------------------------------------------------

# Powertools documents a 422 (and its schemas) for every validated operation; this API answers 400.
_UNUSED_SCHEMAS = ("HTTPValidationError", "ValidationError", "ResponseValidationError")


@cache
def _generated_document() -> dict[str, Any]:
    document: dict[str, Any] = json.loads(
        app.get_openapi_json_schema(
            title=API_TITLE,
            version=API_VERSION,
            description="Direct uploads into XNAT and job status; see README.md. Errors have one shape "
            '({"error", "message", ...}). In AWS, API Gateway answers some requests before this API sees them: '
            "bodies over 10 MB (413), and unsigned requests, unknown paths and methods (403).",
        )
    )
    for operations in document["paths"].values():
        for operation in operations.values():
            operation["responses"].pop("422", None)
    for name in _UNUSED_SCHEMAS:
        document["components"]["schemas"].pop(name, None)
    return document


def openapi_document(max_files: int = DEFAULT_MAX_MANIFEST_FILES, max_bytes: int = DEFAULT_MAX_MANIFEST_BYTES) -> str:
    """The OpenAPI document with this deployment's manifest limits (MAX_MANIFEST_FILES, _BYTES)."""
    document = deepcopy(_generated_document())
    schemas = document["components"]["schemas"]
    for model, field in ((UploadRequest, "files"), (JobRequest, "files_relative_paths_to_upload")):
        schemas[model.__name__]["properties"][field]["maxItems"] = max_files
    for operations in document["paths"].values():
        for operation in operations.values():
            if "requestBody" in operation:
                operation["requestBody"]["description"] = (
                    f"application/json only (else 415). The manifest it makes is stored as JSON and must fit in "
                    f"{max_bytes} bytes (MAX_MANIFEST_BYTES; else 400 invalid_manifest, as the intake would refuse "
                    "it); API Gateway itself refuses bodies over 10 MB."
                )
    return json.dumps(document)


# -- errors -----------------------------------------------------------------------------------------------


def _error_response(error: XnatUploadError, **extra: Any) -> Response:
    logger.info("request failed", extra={"error": error.error_code, "status": error.http_status})
    headers = {"Allow": ", ".join(error.allowed)} if isinstance(error, MethodNotAllowedError) else None
    body = {"error": error.error_code, "message": error.message, **extra}
    return Response(error.http_status, JSON, body=body, headers=headers)


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
    return _error_response(exc, **extra)


@app.exception_handler(RequestValidationError)
def handle_validation_error(exc: RequestValidationError) -> Response:
    problems = [  # a field's name is the client's text, of any length: quote it clipped
        {
            "loc": [clip(str(p), QUOTED_NAME_MAX_CHARS) for p in error.get("loc", ())],
            "msg": clip(str(error.get("msg", "")), QUOTED_NAME_MAX_CHARS * 2),
        }
        for error in exc.errors()[:20]
    ]
    return _error_response(InvalidRequestError("the request does not match the schema"), problems=problems)


@app.not_found
def handle_no_route(_: NotFoundError) -> Response:
    """A path no route has is 404; a route's path with a method it does not have is 405 (with `Allow`).
    Registered apart from the catch-all below, which would turn the router's not-found into a 500."""
    method, path = app.current_event.http_method.upper(), app.current_event.path
    allowed = _methods_for(path)
    if allowed:
        return _error_response(
            MethodNotAllowedError(f"{method} is not allowed here; use {', '.join(allowed)}", allowed)
        )
    return _error_response(RouteNotFoundError(f"no route for {method} {path!r}"))


def _methods_for(path: str) -> list[str]:
    """The methods of the routes whose rule matches `path`, matched as the router matches them."""
    routes = app._static_routes + app._dynamic_routes
    return sorted({route.method for route in routes if route.rule.match(path)})


@app.exception_handler(Exception)
def handle_unexpected_error(exc: Exception) -> Response:
    """A bug: a JSON 500 instead of API Gateway's bare 502."""
    logger.exception("request crashed")
    return _error_response(InternalError(f"unexpected {type(exc).__name__}; see the logs"))


@logger.inject_lambda_context(correlation_id_path="requestContext.requestId", clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
