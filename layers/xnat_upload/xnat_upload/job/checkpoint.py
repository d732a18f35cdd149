"""A job's state between invocations: every file's fate so far, the validated objects, the rate.

A job bigger than one invocation continues itself; the next invocation resumes from this state, so
files already in XNAT and verified are neither fetched nor sent again, and objects are not looked
up again (they are read pinned to the ETag validated at the start, so nothing else can be sent).

Stored gzipped (`JobStore.write_checkpoint`): 100,000 files take a few MB, not tens.

Example::

    state = JobState.new(job_id="ab12", manifest_version="v1")
    result = run_job(manifest, job_id="ab12", settings=settings, s3=s3, state=state)
    store.write_checkpoint("ab12", state.to_bytes())
    state = JobState.from_bytes(store.read_checkpoint("ab12"))
"""

from __future__ import annotations

import gzip
import json
from dataclasses import dataclass, field
from typing import Any, Literal

from ..result import FileResult, FileStatus, JobResult
from ..transfer.budget import Throughput
from ..transfer.sources import SourceObject

FORMAT = 1
State = Literal["running", "waiting_for_xnat", "done"]


@dataclass
class JobState:
    """Mutable while an invocation runs; `run_job` fills it, the worker stores it."""

    job_id: str
    manifest_version: str | None
    continuation: int = 0
    state: State = "running"
    files: list[FileResult] = field(default_factory=list)
    sources: dict[str, SourceObject] = field(default_factory=dict)
    xnat: dict[str, str] = field(default_factory=dict)
    source: dict[str, str] = field(default_factory=dict)
    upload_mode: str | None = None
    started_at: str | None = None
    throughput: Throughput = field(default_factory=Throughput)
    xnat_requests: int = 0
    xnat_retries: int = 0
    invocations: int = 0
    stalled_invocations: int = 0  # invocations in a row that finished no file
    unavailable_since: str | None = None
    journal_seq: int = 0  # the last write-ahead journal segment this state has absorbed (job/journal.py)

    @classmethod
    def new(cls, job_id: str, manifest_version: str | None) -> JobState:
        return cls(job_id=job_id, manifest_version=manifest_version)

    @property
    def resumable(self) -> bool:
        """Files and objects are known: the next invocation skips validation and lookups."""
        return bool(self.files) and len(self.sources) == sum(1 for f in self.files if f.source_etag is not None)

    def decided(self) -> int:
        """Files whose fate is settled (not pending)."""
        return sum(1 for f in self.files if f.status is not FileStatus.PENDING)

    def absorb(self, result: JobResult) -> None:
        """Take what an invocation learned into the state (its files are the state's own objects)."""
        self.files = result.files
        self.xnat = result.xnat or self.xnat
        self.source = result.source or self.source
        self.upload_mode = result.upload_mode or self.upload_mode
        self.started_at = self.started_at or result.started_at

    def to_bytes(self) -> bytes:
        document: dict[str, Any] = {
            "format": FORMAT,
            "job_id": self.job_id,
            "manifest_version": self.manifest_version,
            "continuation": self.continuation,
            "state": self.state,
            "xnat": self.xnat,
            "source": self.source,
            "upload_mode": self.upload_mode,
            "started_at": self.started_at,
            "throughput": [self.throughput.bytes, self.throughput.seconds],
            "xnat_requests": self.xnat_requests,
            "xnat_retries": self.xnat_retries,
            "invocations": self.invocations,
            "stalled_invocations": self.stalled_invocations,
            "unavailable_since": self.unavailable_since,
            "journal_seq": self.journal_seq,
            "files": [f.to_dict() for f in self.files],
            # path, key, size, etag, md5: a list, not a dict per object, keeps 100,000 of them small
            "sources": [[s.path, s.key, s.size, s.etag, s.md5] for s in self.sources.values()],
        }
        return gzip.compress(json.dumps(document, separators=(",", ":")).encode(), compresslevel=1, mtime=0)

    @classmethod
    def from_bytes(cls, data: bytes) -> JobState | None:
        """None for anything unreadable: a broken checkpoint costs a fresh start, never a crash."""
        try:
            document = json.loads(gzip.decompress(data))
            if not isinstance(document, dict) or document.get("format") != FORMAT:
                return None
            throughput = document.get("throughput") or [0, 0.0]
            return cls(
                job_id=str(document["job_id"]),
                manifest_version=document.get("manifest_version"),
                continuation=int(document.get("continuation", 0)),
                state=document.get("state", "running"),
                files=[FileResult.from_dict(f) for f in document.get("files", [])],
                sources={row[0]: SourceObject(*row) for row in document.get("sources", [])},
                xnat=dict(document.get("xnat") or {}),
                source=dict(document.get("source") or {}),
                upload_mode=document.get("upload_mode"),
                started_at=document.get("started_at"),
                throughput=Throughput(int(throughput[0]), float(throughput[1])),
                xnat_requests=int(document.get("xnat_requests", 0)),
                xnat_retries=int(document.get("xnat_retries", 0)),
                invocations=int(document.get("invocations", 0)),
                stalled_invocations=int(document.get("stalled_invocations", 0)),
                unavailable_since=document.get("unavailable_since"),
                journal_seq=int(document.get("journal_seq", 0)),
            )
        except (OSError, EOFError, ValueError, TypeError, KeyError, IndexError, RecursionError):
            return None
