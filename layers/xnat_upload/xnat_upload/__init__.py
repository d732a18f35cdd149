"""Streams S3 objects named in a job manifest into XNAT and reports every file's fate.

Example::

    import boto3
    from xnat_upload import Settings
    from xnat_upload.intake import accept_manifest
    from xnat_upload.queue import JobQueue

    settings = Settings.from_env()
    queue = JobQueue(boto3.client("sqs"), settings.require_job_queue())
    accept_manifest("manifests/ab12.json", version_id=None, settings=settings, s3=boto3.client("s3"), queue=queue)

Modules, one job each: `config` (environment), `manifest` (schema and path confinement),
`xnat` (REST client), `transfer` (S3 -> XNAT streaming engine), `job` (one invocation's run and
the state between invocations), `result` (the result manifest), `store` (manifests, results,
progress and checkpoints in S3), `queue` (job messages on JobQueue.fifo), `intake` (a manifest
version -> a queued job), `worker` (a job message -> an invocation's work), `submission` (jobs
seen from the API and the CLI), `api` (the seed-compatible call).
"""

from .config import Settings
from .exceptions import (
    AlreadyExistsError,
    ConfigurationError,
    ExperimentNotFoundError,
    IntegrityError,
    KeyOutsidePrefixError,
    ManifestError,
    ObjectNotFoundError,
    PathCollisionError,
    ProjectNotFoundError,
    SourceChangedError,
    TimeBudgetExceededError,
    XnatAuthError,
    XnatError,
    XnatUploadError,
)
from .job import run_job
from .manifest import JobManifest
from .result import FileResult, FileStatus, JobResult, JobStatus
from .store import JobStore

__all__ = [
    "AlreadyExistsError",
    "ConfigurationError",
    "ExperimentNotFoundError",
    "FileResult",
    "FileStatus",
    "IntegrityError",
    "JobManifest",
    "JobResult",
    "JobStatus",
    "JobStore",
    "KeyOutsidePrefixError",
    "ManifestError",
    "ObjectNotFoundError",
    "PathCollisionError",
    "ProjectNotFoundError",
    "Settings",
    "SourceChangedError",
    "TimeBudgetExceededError",
    "XnatAuthError",
    "XnatError",
    "XnatUploadError",
    "run_job",
]
