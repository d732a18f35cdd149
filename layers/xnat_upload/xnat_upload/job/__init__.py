"""Job orchestration and the result manifest."""

from ..result import FileResult, FileStatus, JobResult, JobStatus
from .runner import partial_result, run_job

__all__ = ["FileResult", "FileStatus", "JobResult", "JobStatus", "partial_result", "run_job"]
