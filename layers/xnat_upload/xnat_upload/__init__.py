"""Streams S3 objects named in a job manifest into XNAT and reports every file's fate.

Example::

    import boto3
    from xnat_upload import Settings, process_manifest_object

    result = process_manifest_object("manifests/ab12.json", settings=Settings.from_env(), s3=boto3.client("s3"))
    print(result.to_dict()["urls"])

Modules, one job each: `config` (environment), `manifest` (schema and path confinement),
`xnat` (REST client), `transfer` (S3 -> XNAT streaming engine), `job` (orchestration),
`result` (the result manifest), `store` (manifests and results in S3), `trigger` (one manifest
object end to end), `api` (the seed-compatible synchronous call).
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
from .trigger import process_manifest_object

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
    "process_manifest_object",
    "run_job",
]
