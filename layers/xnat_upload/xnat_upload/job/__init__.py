"""Job orchestration and the result manifest."""

from ..result import FileResult, FileStatus, JobResult, JobStatus
from .runner import run_job

__all__ = ["FileResult", "FileStatus", "JobResult", "JobStatus", "run_job"]
