"""Jobs seen from outside: submit a manifest (idempotent on its job ID), enqueue one directly, and
read a job's status, version-aware (a result of an older manifest version is not the answer).

Example::

    submission = submit_job(manifest, job_id="ab12", settings=settings, s3=s3)
    state, document = job_status("ab12", settings=settings, s3=s3)  # ("pending", ledger item) until it ends
"""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal

from .clipping import clip
from .config import Settings
from .exceptions import (
    JobConflictError,
    JobNotFoundError,
    ManifestError,
    NetConfinementError,
    UnversionedBucketError,
)
from .job.ledger import JobRecord, Progress, ledger_for
from .job.queue import JobMessage, message_group_id
from .job.queue.sender import MessageSender
from .manifest import JobManifest, confined_keys, refusal_type
from .result import FileResult, JobResult
from .store import MISSING, JobStore, encode_manifest

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

JOB_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._~-]{0,127}$"
# `check_job_id` also refuses a trailing `.json` (its key would end `.json.json`): what JSON Schema says of it.
JOB_ID_NOT_JSON: dict[str, Any] = {"not": {"pattern": r"\.json$"}}
_JOB_ID = re.compile(JOB_ID_PATTERN)

JobState = Literal["done", "pending"]


@dataclass(frozen=True)
class Submission:
    job_id: str
    manifest_key: str
    created: bool  # False when the same manifest was already submitted under this ID
    resumed: bool = False  # True when it had ended partial or failed and was put again to finish


def check_job_id(job_id: str) -> str:
    if not _JOB_ID.fullmatch(job_id) or job_id.endswith(".json"):
        raise ManifestError(f"job_id {job_id!r} must match {JOB_ID_PATTERN} (and not end in .json)")
    return job_id


def net_job_id(net_id: str, job_id: str, settings: Settings) -> str:
    """The job ID a net's route names: `<net_id>/<job_id>` when jobs are confined to nets (their
    manifests lie under `manifests/<net_id>/`), the job ID itself otherwise."""
    return f"{net_id}/{job_id}" if settings.confine_to_net else job_id


def validated_manifest(manifest_data: Any, settings: Settings) -> JobManifest:
    """What the intake would refuse, refused now, with the intake's error: the schema and the number of
    files, the size of the manifest as it will be stored (the intake measures those bytes), then the
    first refused path."""
    manifest = JobManifest.from_data(manifest_data, max_files=settings.max_manifest_files)
    size = len(encode_manifest(manifest.model_dump(exclude_none=True)))
    if size > settings.max_manifest_bytes:
        raise ManifestError(f"manifest is larger than {settings.max_manifest_bytes} bytes (it would be {size})")
    _, refused = confined_keys(settings.upload_prefix(manifest.net_id), manifest.files_relative_paths_to_upload)
    if refused:  # the intake's code for these refusals, with the first such refusal's own message
        error_type = refusal_type(refused)
        raise next(error for error in refused.values() if isinstance(error, error_type))
    return manifest


def submit_job(
    manifest_data: dict[str, Any],
    *,
    settings: Settings,
    s3: S3Client,
    job_id: str | None = None,
    net_id: str | None = None,
    submitted_by: str | None = None,
) -> Submission:
    """Validate fully (the intake would refuse it anyway), then put `manifests/<job_id>.json` once.

    `net_id`: the net the caller's route names (`POST /nets/{net_id}/jobs`); the manifest must name
    the same one. With CONFINE_TO_NET on, the job is that net's (`manifests/<net_id>/<job_id>.json`)
    and a submission without a net is refused. `submitted_by` (the API's caller) travels with the
    manifest to the ledger."""
    manifest = validated_manifest(manifest_data, settings)
    job_id = check_job_id(job_id) if job_id else uuid.uuid4().hex
    if net_id is not None and manifest.net_id != net_id:
        raise NetConfinementError(f"the manifest names net {manifest.net_id!r}, the route net {net_id!r}")
    if settings.confine_to_net:
        if net_id is None:
            raise NetConfinementError(
                "this deployment confines jobs to their net (CONFINE_TO_NET): submit to the net's own route "
                "(POST /nets/{net_id}/jobs) or put the manifest under manifests/<net_id>/"
            )
        job_id = net_job_id(net_id, job_id, settings)
    store = JobStore(s3, settings)
    document = manifest.model_dump(exclude_none=True)
    key = settings.manifest_key(job_id)
    if store.put_manifest_once(job_id, document, submitted_by):
        return Submission(job_id, key, created=True)
    existing = store.load_manifest(key)
    try:
        same = JobManifest.from_json(existing, max_bytes=settings.max_manifest_bytes) == manifest
    except ManifestError:
        same = False
    if not same:
        raise JobConflictError(
            f"job {job_id!r} was already submitted with a different manifest: use a new job ID "
            "(--job-id, or job_id in the request) for a different job"
        )
    previous = store.read_result(job_id)
    current = store.manifest_version(job_id)
    if previous is not None and _same_version(previous, current) and previous.get("status") != "succeeded":
        # Submitting a finished, unfinished job again resumes it: a new manifest version is a new
        # run, which skips what XNAT already holds (the S3 counterpart: re-put the manifest).
        store.put_manifest(job_id, document, submitted_by)
        return Submission(job_id, key, created=True, resumed=True)
    return Submission(job_id, key, created=False)


@dataclass(frozen=True)
class JobLookup:
    """Where a job of the current manifest version is, from its ledger item whenever it has one.

    Exactly one is set: `pending` (the ledger item's summary while it is queued, running or waiting),
    `record` (its finished ledger item: the answer, without reading the result), or `result` (the
    result manifest, for a job the ledger does not know: no JOBS_TABLE, or ended before the ledger)."""

    job_id: str
    pending: dict[str, Any] | None = None
    record: JobRecord | None = None
    result: dict[str, Any] | None = None


def find_job(job_id: str, *, settings: Settings, s3: S3Client, net_id: str | None = None) -> JobLookup:
    """The job of the current manifest version: its ledger item (one small read; a finished job's
    result is not read), else its result. A result or ledger item of another version is not this
    job's answer yet. A deleted manifest's last result still answers; with neither, JobNotFoundError.
    `net_id`: the net the caller's route names (`GET /nets/{net_id}/jobs/{job_id}`), that net's job
    when confined (`lookup.job_id` is then the net's job id)."""
    check_job_id(job_id)
    if net_id is not None:
        job_id = net_job_id(net_id, job_id, settings)
    store = JobStore(s3, settings)
    current = store.manifest_version(job_id)
    record = job_record(job_id, settings)
    if record is not None and current is not MISSING and _same_version(record.to_item(), current):
        if record.state != "finished":
            return JobLookup(job_id, pending=record.summary())
        return JobLookup(job_id, record=record)
    result = store.read_result(job_id)
    if current is MISSING:
        if result is not None:
            return JobLookup(job_id, result=result)
        raise JobNotFoundError(f"no job {job_id!r}")
    if result is not None and _same_version(result, current):
        return JobLookup(job_id, result=result)
    return JobLookup(job_id, pending={"job_id": job_id, "manifest_version": current, "state": "queued"})


def job_status(
    job_id: str, *, settings: Settings, s3: S3Client, net_id: str | None = None
) -> tuple[JobState, dict[str, Any] | None]:
    """`done` with the result manifest of the current manifest version; else `pending` with where the
    job is (the ledger item of that version: `state` queued, running or waiting_for_xnat). Reads the
    result only once the ledger says the job finished (`find_job`)."""
    lookup = find_job(job_id, settings=settings, s3=s3, net_id=net_id)
    job_id = lookup.job_id
    if lookup.pending is not None:
        return "pending", lookup.pending
    if lookup.record is not None:
        result = JobStore(s3, settings).read_result(job_id)
        if result is None or (result.get("manifest_version") or "") != (lookup.record.manifest_version or ""):
            # the result is written before the ledger's end (ending.py): only a deleted result gets here
            raise JobNotFoundError(f"job {job_id!r} finished, but its result is gone")
        return "done", result
    return "done", lookup.result


def job_record(job_id: str, settings: Settings) -> JobRecord | None:
    """The job's ledger item (None without a ledger, or before the intake saw the job)."""
    return ledger_for(settings).get(job_id) if settings.jobs_table else None


def _same_version(document: dict[str, Any], current: object) -> bool:
    return current is None or document.get("manifest_version") == current


def enqueue_job(
    manifest: JobManifest,
    *,
    job_id: str,
    settings: Settings,
    s3: S3Client,
    queue: MessageSender,
    submitted_by: str | None = None,
) -> str | None:
    """Put the (validated) manifest, open its ledger item (queued) and send its job message straight
    to the job queue, without waiting for the intake; returns the manifest version. The S3 event of
    the same put reaches the intake too, which sends the very same message: SQS drops it as a
    duplicate, and the ledger already knows the version.

    Nothing is written under results/: the API may not write there (it could forge a result)."""
    store = JobStore(s3, settings)
    key = settings.manifest_key(job_id)
    version = store.put_manifest(job_id, manifest.model_dump(exclude_none=True), submitted_by)
    if version is None:
        raise UnversionedBucketError()
    if settings.jobs_table:
        result = JobResult(
            job_id, manifest_version=version, files=[FileResult(p) for p in manifest.files_relative_paths_to_upload]
        )
        record = JobRecord(
            job_id,
            version,
            net_id=manifest.net_id,
            submitted_by=submitted_by,
            xnat={
                "project": manifest.central_hub_project_id,
                "session": manifest.accession_id,
                "scan": manifest.scan_id,
                "resource": manifest.resource_id,
            },
            **Progress.of(result).fields(),
        )
        ledger_for(settings).open(record)
    queue.send(
        JobMessage(job_id=job_id, manifest_key=key, manifest_version=version, continuation=0),
        message_group_id(manifest),
    )
    return version


def wait_for_result(
    job_id: str,
    version: str | None,
    *,
    settings: Settings,
    s3: S3Client,
    seconds: float,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> dict[str, Any] | None:
    """The job's result for `version`, waited for at most `seconds`; None when it is not there yet.
    Watches the ledger item (one small read a poll), and reads the result once it says finished."""
    store = JobStore(s3, settings)
    deadline = clock() + seconds
    pause = 0.1
    while True:
        if settings.jobs_table:
            record = job_record(job_id, settings)
            ended = record is not None and record.state == "finished" and record.manifest_version == (version or "")
        else:
            ended = True
        if ended:
            result = store.read_result(job_id)
            if result is not None and (version is None or result.get("manifest_version") == version):
                return result
        left = deadline - clock()
        if left <= 0:
            return None
        sleep(min(pause, left))
        pause = min(1.0, pause * 1.5)


FilesFilter = Literal["problems", "all"]
PAGE_MAX_BYTES = 900_000  # a page of files stays under 1 MB of JSON, whatever the paths and errors
SUMMARY_TEXT_MAX_CHARS = 8_000  # the job's error message in a summary (it may quote the manifest)
ENTRY_TEXT_MAX_CHARS = 4_096  # a file entry's path or error in a page (the full result keeps them whole)
SUMMARY_FIELDS = (
    "job_id",
    "manifest_version",
    "status",
    "counts",
    "error",
    "upload_mode",
    "xnat",
    "started_at",
    "finished_at",
    "duration_seconds",
    "invocations",
    "verified",
    "mode",
    "xnat_missing",
)


def result_summary(
    document: dict[str, Any],
    *,
    location: str,
    files: FilesFilter = "problems",
    offset: int = 0,
    limit: int = 500,
) -> dict[str, Any]:
    """A finished job in under 1 MB, however many files it has: the summary, where the full result
    lies, and one page of its files (by default those not in XNAT as requested: `problems`)."""
    summary = {name: document[name] for name in SUMMARY_FIELDS if name in document}
    error = summary.get("error")
    if isinstance(error, dict) and isinstance(error.get("message"), str):
        summary["error"] = {**error, "message": clip(error["message"], SUMMARY_TEXT_MAX_CHARS)}
    entries = [f for f in document.get("files", []) if isinstance(f, dict)]
    if files == "problems":
        entries = [f for f in entries if not _in_place(f)]
    page: list[dict[str, Any]] = []
    size = 0
    for entry in entries[offset : offset + limit]:
        entry = _clipped(entry)
        size += len(json.dumps(entry)) + 2
        if size > PAGE_MAX_BYTES:
            break
        page.append(entry)
    following = offset + len(page)
    return {
        **summary,
        "result_location": location,
        "files_filter": files,
        "files_matching": len(entries),
        "offset": offset,
        "files": page,
        "next_offset": following if following < len(entries) else None,
    }


def finished_summary(
    record: JobRecord,
    *,
    store: JobStore,
    files: FilesFilter = "problems",
    offset: int = 0,
    limit: int = 500,
) -> dict[str, Any]:
    """A finished job as `result_summary` shows it, from its ledger item: the summary never reads the
    result, and neither does the page of problem files of a job whose every file is in XNAT (the
    ledger counts them: `files_done` of `files_total`). Other pages come from the result."""
    summary: dict[str, Any] = {
        "job_id": record.job_id,
        "manifest_version": record.manifest_version or None,
        "status": record.status,
        "state": record.state,
        "mode": record.mode,
        "counts": record.counts,
        "error": _clipped_error(record.error),
        "upload_mode": record.upload_mode,
        "xnat": record.xnat or None,
        "submitted_by": record.submitted_by,
        "submitted_at": record.submitted_at,
        "started_at": record.started_at,
        "finished_at": record.finished_at,
        "duration_seconds": _seconds_between(record.started_at, record.finished_at),
        "invocations": record.invocations,
        **{name: value for name, value in record.progress().fields().items() if name != "counts"},
        "given_up": record.given_up or None,
    }
    location = store.result_location(record.job_id)
    if files == "problems" and record.files_total - record.files_done <= 0:
        page: dict[str, Any] = {"files_filter": files, "files_matching": 0, "offset": offset, "files": []}
        page["next_offset"] = None
    else:
        result = store.read_result(record.job_id) or {}
        if (result.get("manifest_version") or "") != (record.manifest_version or ""):
            result = {}  # a result of another version is not this job's (it is written before the ledger's end)
        shown = result_summary(result, location=location, files=files, offset=offset, limit=limit)
        page = {name: shown[name] for name in ("files_filter", "files_matching", "offset", "files", "next_offset")}
    return {**{k: v for k, v in summary.items() if v is not None}, "result_location": location, **page}


def _clipped_error(error: dict[str, str] | None) -> dict[str, str] | None:
    if not isinstance(error, dict) or not isinstance(error.get("message"), str):
        return error
    return {**error, "message": clip(error["message"], SUMMARY_TEXT_MAX_CHARS)}


def _seconds_between(start: str | None, end: str | None) -> float | None:
    if not start or not end:
        return None
    try:
        return round((parse_timestamp(end) - parse_timestamp(start)).total_seconds(), 3)
    except ValueError:
        return None


def parse_timestamp(text: str) -> datetime:
    """An ISO-8601 date or date-time (`2026-12-01`, `2026-12-01T08:00`, `...Z`, `...+02:00`), in UTC;
    without an offset it is UTC. ValueError when it is none of these."""
    moment = datetime.fromisoformat(text.strip())
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def ledger_time(moment: datetime) -> str:
    """A time as the ledger writes its own (UTC, milliseconds): they compare as text."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds")


def _clipped(entry: dict[str, Any]) -> dict[str, Any]:
    """A file entry with every long text clipped (`clipped: true`): a refused path may be megabytes
    long, and the page must stay under its limit. The full result keeps it whole."""
    long = [name for name, value in entry.items() if isinstance(value, str) and len(value) > ENTRY_TEXT_MAX_CHARS]
    if not long:
        return entry
    return {**entry, **{name: clip(entry[name], ENTRY_TEXT_MAX_CHARS) for name in long}, "clipped": True}


def _in_place(entry: dict[str, Any]) -> bool:
    status = entry.get("status")
    return status in ("uploaded", "in_xnat") or (status == "already_exists" and entry.get("identical"))


__all__ = [
    "JOB_ID_NOT_JSON",
    "JOB_ID_PATTERN",
    "JobLookup",
    "Submission",
    "check_job_id",
    "enqueue_job",
    "find_job",
    "finished_summary",
    "job_status",
    "ledger_time",
    "net_job_id",
    "parse_timestamp",
    "result_summary",
    "submit_job",
    "validated_manifest",
    "wait_for_result",
]
