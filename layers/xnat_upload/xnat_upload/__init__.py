"""Streams S3 objects named in a job manifest into XNAT and reports every file's fate.

Example::

    import boto3
    from xnat_upload import Settings
    from xnat_upload.job.intake import accept_manifest
    from xnat_upload.job.queue import JobQueue

    settings = Settings.from_env()
    queue = JobQueue(boto3.client("sqs"), settings.require_job_queue())
    accept_manifest("manifests/ab12.json", version_id=None, settings=settings, s3=boto3.client("s3"), queue=queue)

The tree follows the flow. Shared ground: `config` (environment), `exceptions` (error types and
their statuses), `manifest` (schema and path confinement), `result` (the result manifest), `store`
(manifests, results and checkpoints in S3). The work: `xnat` (REST client and session), `transfer`
(S3 -> XNAT streaming engine). A job's life, in `job`: `intake` (a manifest version -> a queued
job), `queue` (job messages on JobQueue.fifo), `worker` (a job message -> an invocation's work),
`runner` (one invocation's run), `checkpoint` (the state between invocations), `progress`. Seen
from outside: `submission` (jobs for the API and the CLI), `api` (the seed-compatible call), `cli`.
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
