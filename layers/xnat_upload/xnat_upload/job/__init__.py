"""A job's life, in the order it happens: `intake` (a manifest version -> a queued job), `queue`
(the job message and its group), `worker` (a message -> this invocation's share, then finish,
continue or wait), `runner` (one invocation's run over XNAT and S3), `checkpoint` (the state one
invocation hands the next), `progress` (where a running job is), `idempotency` (duplicate events)."""

from ..result import FileResult, FileStatus, JobResult, JobStatus, PreviousOutcomes
from .checkpoint import JobState
from .runner import admit, partial_result, run_job

__all__ = [
    "FileResult",
    "FileStatus",
    "JobResult",
    "JobState",
    "JobStatus",
    "PreviousOutcomes",
    "admit",
    "partial_result",
    "run_job",
]
