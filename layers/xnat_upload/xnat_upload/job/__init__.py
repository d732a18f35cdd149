"""Job orchestration: admission, one invocation's run, the state handed between invocations."""

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
