"""One upload job, from a validated manifest to a complete `JobResult`.

Example::

    result = run_job(manifest_data, job_id="ab12", settings=Settings.from_env(), s3=boto3.client("s3"))
    result.to_dict()["urls"]

Order matters: every path is checked and every object found *before* XNAT is touched, so a bad
manifest uploads nothing. Expected failures become the result's `error`; nothing is raised.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from ..config import Settings
from ..exceptions import (
    AlreadyExistsError,
    InternalError,
    KeyOutsidePrefixError,
    ManifestError,
    ObjectNotFoundError,
    PathCollisionError,
    SourceChangedError,
    SourceReadError,
    TimeBudgetExceededError,
    XnatAuthError,
    XnatError,
    XnatUploadError,
    error_for_code,
)
from ..manifest import JobManifest, confined_keys, requested_paths, unlisted_note
from ..observability import logger, tracer
from ..redaction import redact
from ..result import FileResult, FileStatus, JobResult
from ..session import XnatConnector, open_xnat
from ..transfer.engine import UNAVAILABLE_AFTER, TimeBudget, TransferEngine, WorkItem
from ..transfer.sources import SourceObject, find_objects, head_objects, object_md5
from ..xnat import RemoteFile

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client


MD5_READ_ATTEMPTS = 3  # reads of an object to hash it, when S3 fails in passing


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


@tracer.capture_method(capture_response=False)
def run_job(
    manifest: JobManifest | Mapping[str, Any],
    *,
    job_id: str | None,
    settings: Settings,
    s3: S3Client,
    remaining_seconds: Callable[[], float] | None = None,
    known_md5: Mapping[tuple[str, str], str] | None = None,
    connect: XnatConnector = open_xnat,
    on_progress: Callable[[JobResult], object] | None = None,
) -> JobResult:
    """Run a job to the end and say what happened to every file.

    `known_md5` ((path, S3 ETag) -> MD5 from an earlier run's result) lets a re-run recognise
    files it already put in XNAT even when the ETag is not an MD5; a changed object does not match.
    """
    result = JobResult(job_id, started_at=_now())
    started = time.monotonic()
    try:
        if not isinstance(manifest, JobManifest):
            data = manifest
            result.files = [FileResult(p) for p in requested_paths(data, settings.max_manifest_files)]
            try:
                manifest = JobManifest.from_data(data, max_files=settings.max_manifest_files)
            except ManifestError as exc:
                note = unlisted_note(data, len(result.files))
                raise type(exc)(exc.message + note) if note else exc from None
        result.files = [FileResult(p) for p in manifest.files_relative_paths_to_upload]
        sources = _validate_sources(manifest, result, settings, s3)
        progress = (lambda: on_progress(result)) if on_progress is not None else (lambda: None)
        _upload(manifest, result, sources, settings, s3, remaining_seconds, known_md5 or {}, connect, progress)
    except TimeBudgetExceededError as exc:
        result.fail_job(exc, untouched=FileStatus.PENDING)  # a re-run does them
    except XnatUploadError as exc:
        result.fail_job(exc)
    except Exception as exc:
        # A bug or an unforeseen answer: record what did happen to each file, then fail loudly.
        result.fail_job(InternalError(f"unexpected {type(exc).__name__}; the job was not completed"))
        result.finished_at = _now()
        exc.add_note("the partial result is attached: partial_result(exc)")
        exc.job_result = result  # type: ignore[attr-defined]
        raise
    result.finished_at = _now()
    result.duration_seconds = round(time.monotonic() - started, 3)
    for file in result.files:
        logger.info(
            "file " + file.status.value,
            extra={
                "path": file.path,
                "status": file.status.value,
                "bytes": file.bytes,
                "attempts": file.attempts,
                "error_code": file.error_code,
                "error": redact(file.error) if file.error else None,
            },
        )
    logger.info(
        "job finished",
        extra={
            "job_id": job_id,
            "status": result.status.value,
            "counts": result.counts(),
            "error": {**result.error, "message": redact(result.error["message"])} if result.error else None,
        },
    )
    return result


def partial_result(exc: BaseException) -> JobResult | None:
    """What `run_job` had done when an unexpected exception stopped it (None for other errors)."""
    partial = getattr(exc, "job_result", None)
    return partial if isinstance(partial, JobResult) else None


def _validate_sources(
    manifest: JobManifest, result: JobResult, settings: Settings, s3: S3Client
) -> dict[str, SourceObject]:
    """Confine every path, refuse collisions, then HEAD every object; any failure stops the job."""
    prefix = settings.upload_prefix(manifest.net_id)
    keys, refused = confined_keys(prefix, manifest.files_relative_paths_to_upload)
    for file in result.files:
        if file.path in refused:
            file.fail(FileStatus.REJECTED, refused[file.path])
    rejected = [f for f in result.files if f.status is FileStatus.REJECTED]
    if rejected:
        error_type = (
            PathCollisionError if all(f.error_code == "path_collision" for f in rejected) else KeyOutsidePrefixError
        )
        raise error_type(f"{len(rejected)} of {len(result.files)} paths refused; nothing was uploaded")

    found = find_objects(s3, settings.data_bucket, keys)
    for file in result.files:
        source = found[file.path]
        if source is None:
            file.fail(
                FileStatus.MISSING, ObjectNotFoundError(f"s3://{settings.data_bucket}/{keys[file.path]} does not exist")
            )
        else:
            file.bytes, file.source_etag = source.size, source.etag
    missing = [f for f in result.files if f.status is FileStatus.MISSING]
    if missing:
        raise ObjectNotFoundError(f"{len(missing)} of {len(result.files)} objects not found; nothing was uploaded")
    result.source = {"bucket": settings.data_bucket, "prefix": prefix}
    return {path: source for path, source in found.items() if source is not None}


def _upload(
    manifest: JobManifest,
    result: JobResult,
    sources: dict[str, SourceObject],
    settings: Settings,
    s3: S3Client,
    remaining_seconds: Callable[[], float] | None,
    known_md5: Mapping[tuple[str, str], str],
    connect: XnatConnector,
    progress: Callable[[], object],
) -> None:
    """Log in once, find the session, ensure scan and resource, decide per file, transfer, log out."""
    client = connect(settings, remaining_seconds)
    try:
        with client as xnat:
            project_id = xnat.find_project_by_secondary_id(manifest.central_hub_project_id)
            experiment = xnat.get_experiment(project_id, manifest.accession_id)
            result.xnat = {
                "project": project_id,
                "subject": experiment.subject_id,
                "experiment": experiment.experiment_id,
                "scan": manifest.scan_id,
                "resource": manifest.resource_id,
            }
            xnat.create_xnat_scan(experiment, manifest.scan_id, manifest.scan_xsi_type or settings.scan_xsi_type)
            xnat.create_xnat_resource(
                experiment, manifest.scan_id, manifest.resource_id, manifest.resource_format, manifest.resource_content
            )
            listing = xnat.list_resource_files(experiment, manifest.scan_id, manifest.resource_id)

            sources, undecided = _with_md5_where_xnat_has_the_file(
                sources, listing, known_md5, s3, settings, remaining_seconds
            )
            work: list[WorkItem] = []
            for file in result.files:
                if file.path in undecided:  # its MD5 could not be read: not compared, not sent
                    problem = undecided[file.path]
                    if isinstance(problem, TimeBudgetExceededError):
                        file.status = FileStatus.PENDING  # a re-run compares it
                    else:
                        file.fail(FileStatus.FAILED, problem)
                    continue
                source = sources[file.path]
                remote = listing.get(file.path)
                file.url = xnat.file_url(experiment, manifest.scan_id, manifest.resource_id, file.path)
                if remote is not None:
                    expected = known_md5.get((file.path, source.etag)) or source.md5
                    identical = (
                        expected is not None and remote.digest == expected and remote.size in (None, source.size)
                    )
                    if identical or not manifest.exist_ok:
                        file.status, file.identical, file.md5 = FileStatus.ALREADY_EXISTS, identical, remote.digest
                        if not identical:
                            error = AlreadyExistsError(f"{file.path!r} is already in XNAT and exist_ok is false")
                            file.error, file.error_code = error.message, error.error_code
                        continue
                file.status = FileStatus.PENDING
                work.append(WorkItem(file, source, overwrite=remote is not None))

            budget = TimeBudget(remaining_seconds, settings.time_budget_margin_seconds)
            engine = TransferEngine(
                xnat,
                s3,
                settings.data_bucket,
                experiment,
                manifest.scan_id,
                manifest.resource_id,
                settings,
                budget,
                on_progress=progress,
            )
            result.upload_mode = engine.run(work)
            _raise_if_unfinished(result, engine)
    finally:
        result.xnat_requests = client.requests_made
        result.xnat_retries = client.retries


def _raise_if_unfinished(result: JobResult, engine: TransferEngine) -> None:
    """The job-level error for files the engine left `pending`: not started (no error yet), or sent
    but not verified (their error says so; they stay `pending`, never `failed`: a re-run verifies them)."""
    not_started = [f for f in result.files if f.status is FileStatus.PENDING and f.error is None]
    unverified = [f for f in result.files if f.status is FileStatus.PENDING and f.error is not None]
    if engine.auth_error is not None:
        for file in not_started:
            file.status, file.url = FileStatus.SKIPPED, None
        raise XnatAuthError(
            f"{engine.auth_error.message}; {len(not_started)} files were not attempted and {len(unverified)} were "
            "sent but not verified: check the service account, then re-put the manifest"
        )
    if not_started and engine.xnat_unavailable:
        for file in not_started:
            file.status, file.url = FileStatus.SKIPPED, None
        raise XnatError(
            f"XNAT failed {UNAVAILABLE_AFTER} transfers in a row after retries; {len(not_started)} files were "
            "not attempted: re-put the manifest once XNAT answers again"
        )
    if not_started:
        for file in not_started:
            file.error = "not started before the time budget ran out; re-put the manifest to finish"
            file.url = None
        raise TimeBudgetExceededError(f"{len(not_started)} files not started before the time budget ran out")
    if unverified:
        raise error_for_code(
            unverified[0].error_code or XnatError.error_code,
            f"{len(unverified)} files were sent to XNAT but could not be verified: re-put the manifest to verify them",
        )


def _with_md5_where_xnat_has_the_file(
    sources: dict[str, SourceObject],
    listing: Mapping[str, RemoteFile],
    known_md5: Mapping[tuple[str, str], str],
    s3: S3Client,
    settings: Settings,
    remaining_seconds: Callable[[], float] | None = None,
) -> tuple[dict[str, SourceObject], dict[str, XnatUploadError]]:
    """Know the MD5 of every object XNAT already holds a file for, to tell an identical copy (skip
    it, also with exist_ok false) from a different one.

    A listing-found object has no trusted MD5: HEAD those (a single-part SSE-S3 ETag is the MD5).
    Where the ETag is still not an MD5 (multipart upload, SSE-KMS) and XNAT's file has the same
    size, the object is read and hashed (streamed, pinned to the validated ETag). Returns the
    sources and, per path, why its MD5 could not be had (out of time, object changed, S3 failing).
    """
    unknown = {
        path: source
        for path, source in sources.items()
        if path in listing and source.md5 is None and (path, source.etag) not in known_md5
    }
    if not unknown:
        return sources, {}
    refreshed = head_objects(s3, settings.data_bucket, {path: source.key for path, source in unknown.items()})
    sources = dict(sources)
    for path, source in unknown.items():
        fresh = refreshed.get(path)
        if fresh is not None and fresh.etag == source.etag and fresh.md5 is not None:  # the validated version
            sources[path] = replace(source, md5=fresh.md5)
    to_hash = [
        sources[path]
        for path in unknown
        if sources[path].md5 is None and listing[path].digest and listing[path].size == sources[path].size
    ]
    if not to_hash:
        return sources, {}
    margin = settings.time_budget_margin_seconds

    def in_time() -> bool:  # past the margin no transfer starts either: the re-run compares the rest
        return remaining_seconds is None or remaining_seconds() > margin

    def md5_of(source: SourceObject) -> tuple[str, str | XnatUploadError]:
        problem: XnatUploadError = TimeBudgetExceededError("its MD5 was not read before the time budget ran out")
        for _ in range(MD5_READ_ATTEMPTS):
            try:
                digest = object_md5(s3, settings.data_bucket, source, in_time)
            except SourceReadError as exc:  # passing: read it again from the first byte
                problem = exc
                continue
            except SourceChangedError as exc:
                return source.path, exc
            return source.path, digest if digest is not None else problem
        return source.path, problem

    with ThreadPoolExecutor(max_workers=min(settings.upload_concurrency, len(to_hash))) as pool:
        outcomes = list(pool.map(md5_of, to_hash))
    undecided: dict[str, XnatUploadError] = {}
    for path, outcome in outcomes:
        if isinstance(outcome, str):
            sources[path] = replace(sources[path], md5=outcome)
        else:
            undecided[path] = outcome
    logger.info("read S3 objects to compare with XNAT's copies", extra={"objects": len(to_hash)})
    return sources, undecided
