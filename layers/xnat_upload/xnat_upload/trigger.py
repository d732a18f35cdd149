"""A manifest object in S3 -> a job run -> its result manifest in S3. Knows S3, not Lambda.

Example::

    result = process_manifest_object("manifests/ab12.json", settings=settings, s3=s3)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from .config import Settings
from .exceptions import InternalError, ManifestError
from .job import partial_result, run_job
from .manifest import JobManifest, decode_json, requested_paths, unlisted_note
from .observability import logger
from .progress import ProgressReporter
from .result import FileResult, JobResult
from .store import JobStore

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client


def process_manifest_object(
    key: str,
    *,
    settings: Settings,
    s3: S3Client,
    version_id: str | None = None,
    remaining_seconds: Callable[[], float] | None = None,
    **run_options: object,
) -> JobResult | None:
    """Run the job a manifest describes and write its result; None for keys that are not manifests.

    A result is written whatever happens. An unexpected exception is recorded in the result
    and then raised again, so the invocation fails visibly (retries, dead-letter queue).
    """
    job_id = settings.job_id_for(key)
    if job_id is None:
        logger.info("ignoring object outside the manifests prefix", extra={"key": key})
        return None
    store = JobStore(s3, settings)
    result = JobResult(job_id)
    data = None
    try:
        raw = store.load_manifest(key, version_id)
        data = decode_json(raw)
        result.files = [FileResult(p) for p in requested_paths(data, settings.max_manifest_files)]
        manifest = JobManifest.from_data(data, max_files=settings.max_manifest_files)
        reporter = None
        if settings.progress_interval_seconds > 0:
            reporter = ProgressReporter(
                lambda doc: store.write_progress(job_id, doc), settings.progress_interval_seconds
            )
            reporter.tick(result)
        result = run_job(
            manifest,
            job_id=job_id,
            settings=settings,
            s3=s3,
            remaining_seconds=remaining_seconds,
            known_md5=store.known_md5(job_id),
            on_progress=reporter.tick if reporter else None,
            **run_options,  # type: ignore[arg-type]
        )
    except ManifestError as exc:
        note = unlisted_note(data, len(result.files))
        result.fail_job(type(exc)(exc.message + note) if note else exc)
    except Exception as exc:
        logger.exception("job crashed", extra={"job_id": job_id})
        partial = partial_result(exc)  # run_job's own record of what it had done
        if partial is not None:
            result = partial
        else:
            result.fail_job(InternalError(f"unexpected {type(exc).__name__}; the job was not completed"))
        store.write_result(result)
        raise
    result.source = {**result.source, "manifest": key, **({"manifest_version": version_id} if version_id else {})}
    store.write_result(result)
    return result
