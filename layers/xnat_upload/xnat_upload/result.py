"""The result manifest: every requested file's fate, written for every identifiable job."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from enum import StrEnum
from typing import Any

from .exceptions import XnatUploadError
from .redaction import redact


def target_key(xnat: dict[str, Any] | None) -> str | None:
    """One XNAT resource, by the IDs XNAT gave it (project, experiment, scan, resource): what a
    marker of bytes on XNAT's disk is tied to. None until the job has found its session."""
    if not xnat:
        return None
    parts = [xnat.get(name) for name in ("project", "experiment", "scan", "resource")]
    if not all(isinstance(part, str) and part for part in parts):
        return None
    return "/".join(str(part) for part in parts)


class Verified(StrEnum):
    MD5 = "md5"  # XNAT's listing digest equals the MD5 of the bytes sent (or of the S3 object)
    SIZE = "size"  # XNAT lists no digest (its `checksums` setting is off): the size alone matched


class FileStatus(StrEnum):
    UPLOADED = "uploaded"  # in XNAT now, verified against its listing: size, and MD5 where XNAT lists digests
    ALREADY_EXISTS = "already_exists"  # XNAT had it; see `identical` and `error`
    FAILED = "failed"  # tried and not in XNAT as sent; `error` says why
    REJECTED = "rejected"  # refused before any work (hostile or colliding path)
    MISSING = "missing"  # the S3 object does not exist
    SKIPPED = "skipped"  # not tried because the job stopped (job-level `error` says why)
    PENDING = "pending"  # not done yet: the job continues it (or a re-run does)
    # Check mode (`"mode": "check"`) only; there, `missing` means not in XNAT:
    IN_XNAT = "in_xnat"  # XNAT holds the file, identical (see `verified`)
    DIFFERENT = "different"  # XNAT holds another file at this path (size or digest differ: see `error`)
    SOURCE_MISSING = "source_missing"  # the S3 object does not exist


class JobStatus(StrEnum):
    SUCCEEDED = "succeeded"
    PARTIAL = "partial"
    FAILED = "failed"


@dataclass(slots=True)  # a job may list 100,000 files: no per-instance __dict__
class FileResult:
    path: str
    status: FileStatus = FileStatus.SKIPPED
    url: str | None = None
    bytes: int | None = None
    md5: str | None = None
    error: str | None = None
    error_code: str | None = None
    identical: bool | None = None  # for already_exists: XNAT's copy has the same MD5
    attempts: int = 0
    source_etag: str | None = None  # the S3 object version that was validated (re-runs match on it)
    # A PUT of this job for this path may have left bytes on XNAT's disk that are not (yet) known to be
    # catalogued and verified. Only such bytes are this job's own, so only then may the job send
    # `overwrite=true` without `exist_ok` (see transfer/engine.py, "Integrity rule").
    put_unconfirmed: bool = False
    verified: str | None = None  # how XNAT's copy was checked: `Verified` (md5 or size)

    @property
    def in_place(self) -> bool:
        """The file is in XNAT with the requested content."""
        if self.status in (FileStatus.UPLOADED, FileStatus.IN_XNAT):
            return True
        return self.status is FileStatus.ALREADY_EXISTS and bool(self.identical)

    def mark_uploaded(self, md5: str | None, size: int) -> None:
        self.status, self.md5, self.bytes = FileStatus.UPLOADED, md5, size
        self.error = self.error_code = self.verified = None

    def fail(self, status: FileStatus, error: XnatUploadError) -> None:
        self.status, self.error, self.error_code = status, redact(error.message), error.error_code
        self.verified = None

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"path": self.path, "status": self.status.value}
        for name in _OPTIONAL_FIELDS:
            value = getattr(self, name)
            if value is not None:
                data[name] = value
        if self.error:  # errors quote XNAT's answers: never store a credential they echoed
            data["error"] = redact(self.error)
        if not self.put_unconfirmed:
            del data["put_unconfirmed"]
        data["attempts"] = self.attempts
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FileResult:
        """The inverse of `to_dict` (checkpoints are stored this way); unknown keys are ignored."""
        known = {name: data[name] for name in _FIELD_NAMES if name in data}
        known["status"] = FileStatus(known.get("status", FileStatus.PENDING))
        return cls(**known)


_FIELD_NAMES = tuple(f.name for f in fields(FileResult))
_OPTIONAL_FIELDS = tuple(name for name in _FIELD_NAMES if name not in ("path", "status", "attempts"))


@dataclass(frozen=True)
class PreviousOutcomes:
    """What an earlier run of the same job (another manifest version) left behind.

    `known_md5`: (path, S3 ETag) -> MD5 of files it put or found in XNAT, so a re-run recognises
    them even when the ETag is not an MD5 (a changed object does not match): a fact about the S3
    object, true in any resource, and never a permission to overwrite. `unconfirmed`: per XNAT
    target (`target_key`), paths where its PUTs may have left bytes on that target's disk: this
    job's own, so it may overwrite them there, and nowhere else. `sent`: what this very manifest
    version sent in an invocation that was killed before it could checkpoint (job/journal.py).
    """

    known_md5: dict[tuple[str, str], str] = field(default_factory=dict)
    unconfirmed: dict[str, frozenset[str]] = field(default_factory=dict)  # target key -> paths
    sent: dict[str, dict[str, str | None]] = field(default_factory=dict)  # target key -> path -> MD5 sent

    def unconfirmed_at(self, target: str | None) -> frozenset[str]:
        """Paths where an earlier run may have left bytes in `target` (and only there)."""
        return self.unconfirmed.get(target, frozenset()) if target else frozenset()

    def sent_at(self, target: str | None) -> dict[str, str | None]:
        """Paths this manifest version itself sent to `target` in an invocation that was cut off
        before its checkpoint (from the write-ahead journal), with the MD5 sent where known."""
        return self.sent.get(target, {}) if target else {}

    def merged(self, unconfirmed: dict[str, set[str]], sent: dict[str, dict[str, str | None]]) -> PreviousOutcomes:
        joined = {t: frozenset(p) for t, p in self.unconfirmed.items()}
        for target, paths in unconfirmed.items():
            joined[target] = joined.get(target, frozenset()) | paths
        return PreviousOutcomes(self.known_md5, {t: p for t, p in joined.items() if p}, {**self.sent, **sent})

    @classmethod
    def from_document(cls, document: dict[str, Any] | None) -> PreviousOutcomes:
        """From a stored result manifest; anything malformed is skipped, never a crash. Its
        `put_unconfirmed` paths count for the XNAT target it names, nowhere else."""
        entries = (document or {}).get("files")
        xnat = (document or {}).get("xnat")
        target = target_key(xnat) if isinstance(xnat, dict) else None
        known: dict[tuple[str, str], str] = {}
        unconfirmed: set[str] = set()
        for entry in entries if isinstance(entries, list) else []:
            if not isinstance(entry, dict) or not isinstance(entry.get("path"), str):
                continue
            if entry.get("put_unconfirmed") is True and target:
                unconfirmed.add(entry["path"])
            if not entry.get("md5") or not entry.get("source_etag"):
                continue
            # `pending` with an MD5: sent (that MD5 is of the bytes sent) but not verified in time.
            if entry.get("status") in ("uploaded", "pending") or (
                entry.get("status") == "already_exists" and entry.get("identical")
            ):
                known[(entry["path"], str(entry["source_etag"]))] = str(entry["md5"])
        return cls(known, {target: frozenset(unconfirmed)} if target and unconfirmed else {})


@dataclass
class JobResult:
    """What `results/<job_id>.json` holds. `urls` is the seed's return value."""

    job_id: str | None
    files: list[FileResult] = field(default_factory=list)
    manifest_version: str | None = None  # the manifest version this result belongs to
    error: dict[str, str] | None = None
    upload_mode: str | None = None
    xnat: dict[str, str] = field(default_factory=dict)
    source: dict[str, str] = field(default_factory=dict)
    started_at: str | None = None
    finished_at: str | None = None
    xnat_requests: int | None = None
    xnat_retries: int | None = None
    duration_seconds: float | None = None
    invocations: int | None = None  # how many worker invocations the job took (continuations + 1)
    mode: str | None = None  # "check" for a check job (nothing written to XNAT); absent: an upload
    xnat_missing: list[str] | None = None  # check mode: XNAT objects that do not exist (project ... resource)

    @property
    def status(self) -> JobStatus:
        if self.error is None and self.files and all(f.in_place for f in self.files):
            return JobStatus.SUCCEEDED
        if any(f.in_place for f in self.files) or any(f.status is FileStatus.PENDING for f in self.files):
            return JobStatus.PARTIAL
        return JobStatus.FAILED

    @property
    def urls(self) -> list[str]:
        return [f.url for f in self.files if f.in_place and f.url]

    def fail_job(self, error: XnatUploadError, untouched: FileStatus = FileStatus.SKIPPED) -> None:
        """Record a job-level failure; files not yet decided get `untouched` status."""
        message = redact(error.message)
        self.error = {"code": error.error_code, "message": message}
        for file in self.files:
            if file.status in (FileStatus.SKIPPED, FileStatus.PENDING) and file.error is None:
                file.status = untouched
                file.error = f"not attempted: {message}"

    def counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for file in self.files:
            counts[file.status.value] = counts.get(file.status.value, 0) + 1
        return counts

    def verification_counts(self) -> dict[str, int]:
        """Files in XNAT by how they were verified (`md5`, `size`)."""
        counts: dict[str, int] = {}
        for file in self.files:
            if file.in_place and file.verified:
                counts[file.verified] = counts.get(file.verified, 0) + 1
        return counts

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "job_id": self.job_id,
            "manifest_version": self.manifest_version,
            "status": self.status.value,
            "urls": self.urls,
            "counts": self.counts(),
            "verified": self.verification_counts(),
            "files": [f.to_dict() for f in self.files],
        }
        optional = {
            "error": {**self.error, "message": redact(self.error["message"])} if self.error else None,
            "upload_mode": self.upload_mode,
            "xnat": self.xnat or None,
            "source": self.source or None,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "xnat_requests": self.xnat_requests,
            "xnat_retries": self.xnat_retries,
            "duration_seconds": self.duration_seconds,
            "invocations": self.invocations,
            "mode": self.mode,
            "xnat_missing": self.xnat_missing,
        }
        data.update({k: v for k, v in optional.items() if v is not None})
        return data
