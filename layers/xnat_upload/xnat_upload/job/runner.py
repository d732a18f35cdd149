"""One upload job (or one invocation's share of it), from a validated manifest to a `JobResult`.

Example::

    result = run_job(manifest_data, job_id="ab12", settings=Settings.from_env(), s3=boto3.client("s3"))
    result.to_dict()["urls"]

Order matters: every path is checked and every object found *before* XNAT is touched, so a bad
manifest uploads nothing. Expected failures become the result's `error`; nothing is raised.

With a `JobState` the run resumes where an earlier invocation stopped: its files keep their fate,
objects are not looked up again, and only `pending` files are worked on. Files left `pending` say
why in the result's `error`: `time_budget_exceeded` (the job continues itself) or
`xnat_unavailable` (the job waits and tries again).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from ..config import Settings
from ..exceptions import (
    AlreadyExistsError,
    InternalError,
    ManifestError,
    ObjectNotFoundError,
    SourceChangedError,
    SourceReadError,
    TimeBudgetExceededError,
    XnatAuthError,
    XnatError,
    XnatUnavailableError,
    XnatUploadError,
)
from ..manifest import JobManifest, confined_keys, refusal_type, requested_paths, unlisted_note
from ..observability import logger, tracer
from ..redaction import redact
from ..result import FileResult, FileStatus, JobResult, PreviousOutcomes, Verified, target_key
from ..transfer.budget import TimeBudget
from ..transfer.engine import ZIP_ENTRY_MAX_BYTES, ZIP_MIN_FILES, TransferEngine, WorkItem
from ..transfer.prefetch import Prefetcher
from ..transfer.s3_deadline import carry_context, s3_deadline
from ..transfer.sources import SourceObject, find_objects, head_objects, object_md5
from ..xnat import RemoteFile, XnatClient
from ..xnat.models import target_names
from ..xnat.session import XnatConnector, open_xnat
from . import check
from .checkpoint import JobState
from .journal import Journal

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

MD5_READ_ATTEMPTS = 3  # reads of an object to hash it, when S3 fails in passing


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def admit(
    data: Any,
    *,
    job_id: str | None,
    settings: Settings,
    s3: S3Client | None = None,
    found: dict[str, SourceObject] | None = None,
) -> tuple[JobManifest | None, JobResult]:
    """Check a decoded manifest without XNAT: the schema, then every path confined to its net's
    upload prefix, no two paths on one XNAT file; with `s3`, also that every object exists (the
    intake's quick, bounded lookup: see `find_sources`).

    Returns the manifest and a result listing every requested file; or None and a failed result
    that says why (refused paths are `rejected`, missing objects `missing`, one by one). What the
    intake, the API and the runner all check, the same way. `found` receives the objects the
    lookup reached.
    """
    result = JobResult(job_id, started_at=_now())
    result.files = [FileResult(p) for p in requested_paths(data, settings.max_manifest_files)]
    try:
        try:
            manifest = JobManifest.from_data(data, max_files=settings.max_manifest_files)
        except ManifestError as exc:  # say when the result cannot list every requested path
            note = unlisted_note(data, len(result.files))
            raise type(exc)(exc.message + note) if note else exc from None
        result.files = [FileResult(p) for p in manifest.files_relative_paths_to_upload]
        if job_id is not None:
            settings.check_net(job_id, manifest.net_id)
        prefix = settings.upload_prefix(manifest.net_id)
        _, refused = confined_keys(prefix, manifest.files_relative_paths_to_upload)
        if refused:
            for file in result.files:
                if file.path in refused:
                    file.fail(FileStatus.REJECTED, refused[file.path])
            rejected = [f for f in result.files if f.status is FileStatus.REJECTED]
            error_type = refusal_type(refused)
            raise error_type(f"{len(rejected)} of {len(result.files)} paths refused; nothing was uploaded")
        result.source = {"bucket": settings.images_bucket, "prefix": prefix}
        if s3 is not None and manifest.mode != "check":  # a check reports missing objects, file by file
            reached = find_sources(manifest, result, settings, s3, quick=True)
            if found is not None:
                found.update(reached)
    except (ManifestError, ObjectNotFoundError) as exc:
        result.fail_job(exc)
        result.finished_at = _now()
        return None, result
    return manifest, result


@tracer.capture_method(capture_response=False)
def run_job(
    manifest: JobManifest | Mapping[str, Any],
    *,
    job_id: str | None,
    settings: Settings,
    s3: S3Client,
    remaining_seconds: Callable[[], float] | None = None,
    previous: PreviousOutcomes | None = None,
    connect: XnatConnector = open_xnat,
    on_progress: Callable[[JobResult], object] | None = None,
    state: JobState | None = None,
    invocation_seconds: float | None = None,
    journal: Journal | None = None,
    found: Mapping[str, SourceObject] | None = None,
    prefetch: Prefetcher | None = None,
) -> JobResult:
    """Run a job (or, with `state`, this invocation's share of it) and say what happened to every file.

    `previous`: what an earlier run of this job left (see `PreviousOutcomes`). `state`: resumed
    from and updated in place. `invocation_seconds`: how long a whole invocation lasts, so that no
    unit of work is started that could never finish in one. `journal`: where each PUT is written
    ahead (job/journal.py); without it a kill forgets what the invocation sent. `found`: the
    objects the intake found for this manifest version (`handed_over`), used instead of looking
    them up again when they are every requested file's. `prefetch`: zip entries already being read.
    """
    state = state or JobState.new(job_id or "", None)
    before = {f.path: f.status for f in state.files}  # one log line per file whose fate this run settles
    result = JobResult(job_id, manifest_version=state.manifest_version, started_at=state.started_at or _now())
    started = time.monotonic()
    previous = previous or PreviousOutcomes()
    try:
        if state.resumable:
            if not isinstance(manifest, JobManifest):
                manifest = JobManifest.from_data(manifest, max_files=settings.max_manifest_files)
            result.files, result.source = state.files, state.source
            sources = state.sources
        else:
            admitted, result = admit(
                manifest.model_dump() if isinstance(manifest, JobManifest) else manifest,
                job_id=job_id,
                settings=settings,
            )
            result.manifest_version = state.manifest_version
            if admitted is None:
                state.absorb(result)
                return _finish(result, job_id, started, before)
            manifest = admitted
            if found is not None and manifest.mode != "check" and _covers(found, manifest, settings):
                sources = _use_found(result, found)
            else:
                sources = find_sources(manifest, result, settings, s3, allow_missing=manifest.mode == "check")
            state.sources = sources
        state.absorb(result)
        result.upload_mode = state.upload_mode
        progress = (lambda: on_progress(result)) if on_progress is not None else (lambda: None)
        # S3 reads end when XNAT calls do: half the margin before the deadline, the rest for the result.
        cut_in = remaining_seconds() - settings.time_budget_margin_seconds / 2 if remaining_seconds else None
        with s3_deadline(cut_in):
            if manifest.mode == "check":
                result.mode = "check"
                _check(manifest, result, state, sources, settings, s3, remaining_seconds, previous, connect)
            else:
                _upload(manifest, result, state, sources, settings, s3, remaining_seconds, previous, connect,
                        progress, invocation_seconds, journal, prefetch)  # fmt: skip
    except TimeBudgetExceededError as exc:
        result.fail_job(exc, untouched=FileStatus.PENDING)  # the job continues itself
    except XnatUnavailableError as exc:
        result.fail_job(exc, untouched=FileStatus.PENDING)  # the job waits and tries again
    except XnatUploadError as exc:
        result.fail_job(exc)
    except Exception as exc:
        # A bug or an unforeseen answer: record what did happen to each file, then fail loudly.
        result.fail_job(InternalError(f"unexpected {type(exc).__name__}; the job was not completed"))
        result.finished_at = _now()
        exc.add_note("the partial result is attached: partial_result(exc)")
        exc.job_result = result  # type: ignore[attr-defined]
        raise
    state.absorb(result)
    return _finish(result, job_id, started, before)


def _finish(result: JobResult, job_id: str | None, started: float, before: Mapping[str, FileStatus]) -> JobResult:
    """Log one line per file whose fate this invocation settled (not every file of a 100,000-file job
    at every invocation), then one line for the invocation."""
    result.finished_at = _now()
    result.duration_seconds = round(time.monotonic() - started, 3)
    for file in result.files:
        if file.status is FileStatus.PENDING or before.get(file.path) is file.status:
            continue
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
        "job invocation finished",
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


def find_sources(
    manifest: JobManifest,
    result: JobResult,
    settings: Settings,
    s3: S3Client,
    *,
    quick: bool = False,
    allow_missing: bool = False,
) -> dict[str, SourceObject]:
    """Find every object (a HEAD each, or a listing for many); any missing one stops the job
    (ObjectNotFoundError, the missing files `missing` in `result`, the others `skipped`).

    `quick`: at most a few listing pages more than the job needs, never a HEAD per unreached key
    (the intake's check, bounded whatever the prefix holds); objects it did not reach are left to
    the worker's full lookup and are not in the answer. `allow_missing` (check mode): a missing
    object is that file's `source_missing`, and the others go on."""
    keys = {path: settings.upload_prefix(manifest.net_id) + path for path in manifest.files_relative_paths_to_upload}
    found = find_objects(s3, settings.images_bucket, keys, head_unreached=not quick)
    for file in result.files:
        if file.path not in found:
            continue
        source = found[file.path]
        if source is None:
            status = FileStatus.SOURCE_MISSING if allow_missing else FileStatus.MISSING
            file.fail(status, ObjectNotFoundError(f"s3://{settings.images_bucket}/{keys[file.path]} does not exist"))
        else:
            file.bytes, file.source_etag = source.size, source.etag
            file.status = FileStatus.PENDING
    missing = [f for f in result.files if f.status is FileStatus.MISSING]
    if missing:
        for file in result.files:
            if file.status is FileStatus.PENDING:
                file.status = FileStatus.SKIPPED
        raise ObjectNotFoundError(
            f"{len(missing)} of {len(result.files)} objects not found under "
            f"s3://{settings.data_bucket}/{settings.upload_prefix(manifest.net_id)}; nothing was uploaded: put them "
            "there first (xnat-upload submit --from-dir DIR does), then submit again"
        )
    return {path: source for path, source in found.items() if source is not None}


def _upload(
    manifest: JobManifest,
    result: JobResult,
    state: JobState,
    sources: dict[str, SourceObject],
    settings: Settings,
    s3: S3Client,
    remaining_seconds: Callable[[], float] | None,
    previous: PreviousOutcomes,
    connect: XnatConnector,
    progress: Callable[[], object],
    invocation_seconds: float | None,
    journal: Journal | None = None,
    prefetch: Prefetcher | None = None,
) -> None:
    """Log in once, find the session, ensure scan and resource, decide per file, transfer, log out.

    The objects zip batches will carry are read while the session, scan and resource are looked up
    and listed: from the invocation's start when the worker had them from the intake (`prefetch`),
    else from the moment XNAT accepts the login (a job resumed after waiting for a down XNAT reads
    nothing on a try that finds it still down)."""
    client = connect(settings, remaining_seconds)
    try:
        with _unavailable_when_unreachable(), client as xnat, ExitStack() as reading:
            if prefetch is None:
                prefetch = reading.enter_context(_prefetch(result, sources, settings, s3))
            project_id = xnat.find_project_by_secondary_id(manifest.central_hub_project_id)
            experiment = xnat.get_experiment(project_id, manifest.accession_id)
            result.xnat = target_names(project_id, experiment, manifest.scan_id, manifest.resource_id)
            xnat.create_xnat_scan(experiment, manifest.scan_id, manifest.scan_xsi_type or settings.scan_xsi_type)
            xnat.create_xnat_resource(
                experiment, manifest.scan_id, manifest.resource_id, manifest.resource_format, manifest.resource_content
            )
            listing = xnat.list_resource_files(experiment, manifest.scan_id, manifest.resource_id)
            target = target_key(result.xnat)
            if state.xnat and target_key(state.xnat) != target:
                for file in state.files:  # markers for the resource this state was written for, not this one
                    file.put_unconfirmed = False
            carried, sent = previous.unconfirmed_at(target), previous.sent_at(target)

            open_files = [f for f in result.files if f.status in (FileStatus.PENDING, FileStatus.SKIPPED)]
            ours: set[str] = set()  # paths this version itself may have sent already
            for file in open_files:
                if file.put_unconfirmed or file.path in sent:
                    ours.add(file.path)
                    file.put_unconfirmed = True
                    file.md5 = file.md5 or sent.get(file.path)
                elif file.path in carried:
                    file.put_unconfirmed = True
            sources, undecided = _with_md5_where_xnat_has_the_file(
                sources, open_files, listing, previous, s3, settings, remaining_seconds
            )
            state.sources = sources
            work: list[WorkItem] = []
            for file in open_files:
                if file.path in undecided:  # its MD5 could not be read: not compared, not sent
                    problem = undecided[file.path]
                    if isinstance(problem, TimeBudgetExceededError):
                        file.status = FileStatus.PENDING  # the next invocation compares it
                    else:
                        file.fail(FileStatus.FAILED, problem)
                    continue
                source = sources[file.path]
                remote = listing.get(file.path)
                file.url = xnat.file_url(experiment, manifest.scan_id, manifest.resource_id, file.path)
                if _decided_by_listing(file, source, remote, manifest.exist_ok, previous, file.path in ours):
                    continue
                file.status, file.error, file.error_code = FileStatus.PENDING, None, None
                work.append(WorkItem(file, source, overwrite=remote is not None))

            budget = TimeBudget(
                remaining_seconds, settings.time_budget_margin_seconds, state.throughput, invocation_seconds
            )
            engine = TransferEngine(
                xnat, s3, settings.images_bucket, experiment, manifest.scan_id, manifest.resource_id, settings, budget,
                on_progress=progress, exist_ok=manifest.exist_ok,
                journal=journal.bind(result.xnat) if journal is not None else None, prefetch=prefetch,
            )  # fmt: skip
            result.upload_mode = engine.run(work) if work or not state.upload_mode else state.upload_mode
            pending = [f for f in result.files if f.status is FileStatus.PENDING]
            if engine.auth_error is not None:
                # Final: the account is refused (never a login per file). Files sent but unverified stay
                # pending (a re-run verifies them), files not started are skipped.
                unverified = [f for f in pending if f.error]
                for file in pending:
                    if not file.error:
                        file.status, file.url = FileStatus.SKIPPED, None
                raise XnatAuthError(
                    f"{engine.auth_error.message}; {len(pending) - len(unverified)} files were not attempted and "
                    f"{len(unverified)} were sent but not verified: check the service account, then re-put the manifest"
                )
            if pending and engine.xnat_unavailable:
                for file in pending:
                    file.error = file.error or "not attempted: XNAT is unavailable; the job tries again later"
                raise XnatUnavailableError(
                    f"XNAT stopped answering during the transfers (after retries); {len(pending)} files wait "
                    "for it to answer again"
                )
            if pending:
                for file in pending:
                    file.error = file.error or "not started before the time budget ran out; the job continues it"
                raise TimeBudgetExceededError(f"{len(pending)} files not finished before the time budget ran out")
    finally:
        _count_xnat_calls(result, state, client)


def _prefetch(result: JobResult, sources: Mapping[str, SourceObject], settings: Settings, s3: S3Client) -> Prefetcher:
    """Start reading the objects of the files still open, in the result's order (see `zip_prefetch`)."""
    open_files = [f.path for f in result.files if f.status in (FileStatus.PENDING, FileStatus.SKIPPED)]
    return zip_prefetch([sources[p] for p in open_files if p in sources], settings, s3)


def zip_prefetch(sources: Sequence[SourceObject], settings: Settings, s3: S3Client) -> Prefetcher:
    """Start reading the objects that will travel in zip batches (the engine's plan, before the
    listing settles any); the engine drops what the listing settles (`Prefetcher.restrict`)."""
    candidates = [source for source in sources if 0 < source.size <= ZIP_ENTRY_MAX_BYTES]
    if settings.upload_mode == "per_file" or (settings.upload_mode == "auto" and len(candidates) < ZIP_MIN_FILES):
        candidates = []
    return Prefetcher(s3, settings.data_bucket, candidates)


def found_rows(manifest: JobManifest, found: Mapping[str, SourceObject]) -> list[list[Any]] | None:
    """What the intake hands the worker (`JobStore.write_found`): every requested file's object, in
    the manifest's order; None when the intake's bounded lookup did not reach them all."""
    paths = manifest.files_relative_paths_to_upload
    if manifest.mode == "check" or any(path not in found for path in paths):
        return None
    return [[p, found[p].key, found[p].size, found[p].etag, found[p].md5] for p in paths]


def handed_over(document: Mapping[str, Any] | None, version: str | None) -> dict[str, SourceObject] | None:
    """The objects the intake found for this manifest version (path -> object, in the manifest's
    order); None without a hand-over of this version, or one that does not read as written."""
    if document is None or version is None or document.get("manifest_version") != version:
        return None
    rows = document.get("sources")
    if not isinstance(rows, list):
        return None
    found: dict[str, SourceObject] = {}
    for row in rows:
        if not (isinstance(row, list) and len(row) == 5 and isinstance(row[2], int) and isinstance(row[3], str)):
            return None
        path, key, size, etag, md5 = row
        found[str(path)] = SourceObject(str(path), str(key), size, etag, md5 if isinstance(md5, str) else None)
    return found


def _covers(found: Mapping[str, SourceObject], manifest: JobManifest, settings: Settings) -> bool:
    """The hand-over names every requested file, each at the key the manifest's net confines it to."""
    prefix = settings.upload_prefix(manifest.net_id)
    paths = manifest.files_relative_paths_to_upload
    return len(found) == len(paths) and all(p in found and found[p].key == prefix + p for p in paths)


def _use_found(result: JobResult, found: Mapping[str, SourceObject]) -> dict[str, SourceObject]:
    """The files as `find_sources` leaves them when every object exists, from the intake's lookup.
    An object changed or deleted since fails at its read (each is pinned to the ETag found here)."""
    for file in result.files:
        source = found[file.path]
        file.bytes, file.source_etag = source.size, source.etag
        file.status = FileStatus.PENDING
    return {file.path: found[file.path] for file in result.files}


def _count_xnat_calls(result: JobResult, state: JobState, client: XnatClient) -> None:
    """The job's XNAT requests and retries so far: earlier invocations' and this one's."""
    result.xnat_requests = state.xnat_requests + client.requests_made
    result.xnat_retries = state.xnat_retries + client.retries
    state.xnat_requests, state.xnat_retries = result.xnat_requests, result.xnat_retries


def _check(
    manifest: JobManifest,
    result: JobResult,
    state: JobState,
    sources: dict[str, SourceObject],
    settings: Settings,
    s3: S3Client,
    remaining_seconds: Callable[[], float] | None,
    previous: PreviousOutcomes,
    connect: XnatConnector,
) -> None:
    """Check mode (job/check.py): log in, look the target up and list it, compare; write nothing."""
    client = connect(settings, remaining_seconds)
    try:
        with _unavailable_when_unreachable(), client as xnat:
            experiment = check.find_target(xnat, manifest, result)
            listing = xnat.list_resource_files(experiment, manifest.scan_id, manifest.resource_id) if experiment else {}
            open_files = [f for f in result.files if f.status not in (FileStatus.SOURCE_MISSING, FileStatus.REJECTED)]
            sources, undecided = _with_md5_where_xnat_has_the_file(
                sources, open_files, listing, previous, s3, settings, remaining_seconds
            )
            state.sources = sources
            known = {path: replace(source, md5=source.md5 or previous.known_md5.get((path, source.etag)))
                     for path, source in sources.items()}  # fmt: skip

            def url_of(path: str) -> str:
                assert experiment is not None
                return xnat.file_url(experiment, manifest.scan_id, manifest.resource_id, path)

            check.compare(open_files, known, listing, url_of if experiment else None)
            for file in open_files:
                problem = undecided.get(file.path)
                if problem is not None and not isinstance(problem, TimeBudgetExceededError):
                    file.fail(FileStatus.FAILED, problem)
            pending = [f for f in result.files if f.status is FileStatus.PENDING]
            if pending:
                raise TimeBudgetExceededError(f"{len(pending)} files not compared before the time budget ran out")
    finally:
        _count_xnat_calls(result, state, client)


def _decided_by_listing(
    file: FileResult,
    source: SourceObject,
    remote: RemoteFile | None,
    exist_ok: bool,
    previous: PreviousOutcomes,
    ours: bool = False,
) -> bool:
    """Settle a file from the listing alone, when it can be: True when no transfer is needed.
    `ours`: this manifest version may have sent the file already (an earlier invocation, killed or
    continued): catalogued with what it sent, the file is `uploaded`, not `already_exists`."""
    if remote is None:
        return False
    expected = previous.known_md5.get((file.path, source.etag)) or source.md5
    identical = expected is not None and remote.digest == expected and remote.size in (None, source.size)
    sent = file.md5 or expected
    if (
        ours
        and remote.size in (None, source.size)
        and (remote.digest == sent if remote.digest else remote.size is not None)
    ):
        # Sent by an earlier invocation of this job and now catalogued with exactly those bytes (or,
        # where XNAT lists no digest, that many bytes).
        file.mark_uploaded(remote.digest or sent, source.size)
        file.verified = Verified.MD5 if remote.digest else Verified.SIZE
        file.put_unconfirmed = False
        return True
    if identical or not exist_ok:
        file.status, file.identical, file.md5 = FileStatus.ALREADY_EXISTS, identical, remote.digest
        file.verified = Verified.MD5 if identical else None
        file.bytes = source.size
        file.error = file.error_code = None
        if not identical:
            error = AlreadyExistsError(
                f"{file.path!r} is already in XNAT with other content and exist_ok is false: XNAT's copy was kept; "
                'to replace it, submit again with "exist_ok": true'
            )
            file.error, file.error_code = error.message, error.error_code
        return True
    return False


class _unavailable_when_unreachable:
    """XNAT unreachable or failing (connection errors, 429, 5xx after retries) while logging in or
    looking things up is not the job's fault: it becomes `XnatUnavailableError`, and the job waits."""

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: object) -> bool:
        if isinstance(exc, XnatError) and not isinstance(exc, XnatAuthError | XnatUnavailableError) and exc.retryable:
            raise XnatUnavailableError(f"XNAT is unavailable: {exc.message}", exc.status) from exc
        return False


def _with_md5_where_xnat_has_the_file(
    sources: dict[str, SourceObject],
    files: list[FileResult],
    listing: Mapping[str, RemoteFile],
    previous: PreviousOutcomes,
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
        f.path: sources[f.path]
        for f in files
        if f.path in listing
        and sources[f.path].md5 is None
        and (f.path, sources[f.path].etag) not in previous.known_md5
        and not (f.put_unconfirmed and f.md5)
    }
    if not unknown:
        return sources, {}
    refreshed = head_objects(s3, settings.images_bucket, {path: source.key for path, source in unknown.items()})
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

    def in_time() -> bool:  # past the margin no transfer starts either: the next invocation compares the rest
        return remaining_seconds is None or remaining_seconds() > margin

    def md5_of(source: SourceObject) -> tuple[str, str | XnatUploadError]:
        problem: XnatUploadError = TimeBudgetExceededError("its MD5 was not read before the time budget ran out")
        for _ in range(MD5_READ_ATTEMPTS):
            try:
                digest = object_md5(s3, settings.images_bucket, source, in_time)
            except SourceReadError as exc:  # passing: read it again from the first byte
                problem = exc
                continue
            except SourceChangedError as exc:
                return source.path, exc
            return source.path, digest if digest is not None else problem
        return source.path, problem

    with ThreadPoolExecutor(max_workers=min(settings.upload_concurrency, len(to_hash))) as pool:
        outcomes = list(pool.map(carry_context(md5_of), to_hash))
    undecided: dict[str, XnatUploadError] = {}
    for path, outcome in outcomes:
        if isinstance(outcome, str):
            sources[path] = replace(sources[path], md5=outcome)
        else:
            undecided[path] = outcome
    logger.info("read S3 objects to compare with XNAT's copies", extra={"objects": len(to_hash)})
    return sources, undecided
