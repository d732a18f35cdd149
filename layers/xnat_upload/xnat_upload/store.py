"""Manifests and result manifests in the data bucket: the only module that names their keys.

Example::

    store = JobStore(boto3.client("s3"), Settings.from_env())
    store.write_result(result)
    store.read_result("ab12")
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from . import safe_json
from .config import Settings
from .exceptions import ManifestError
from .result import JobResult

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

_NOT_FOUND = {"404", "NoSuchKey", "NotFound"}
PRETTY_MAX_FILES = 1000  # results of bigger jobs are written compact: 100,000 files stay a few MB smaller
MISSING = object()  # `manifest_version` of a manifest (or result) that does not exist
VERSION_METADATA = "manifest-version"
SUBMITTED_BY_METADATA = "submitted-by"  # who submitted a manifest through the API (the caller's ARN)


def encode_manifest(manifest: dict[str, Any]) -> bytes:
    """A manifest's bytes as the API and the CLI store it (and so as the intake measures it)."""
    return json.dumps(manifest).encode()


class JobStore:
    def __init__(self, s3: S3Client, settings: Settings) -> None:
        self._s3 = s3
        self._settings = settings
        self._bucket = settings.data_bucket

    @property
    def settings(self) -> Settings:
        return self._settings

    def load_manifest(self, key: str, version_id: str | None = None) -> bytes:
        """The manifest's bytes, refusing an oversized one before reading it."""
        return self.read_manifest(key, version_id)[0]

    def read_manifest(self, key: str, version_id: str | None = None) -> tuple[bytes, dict[str, str]]:
        """The manifest's bytes and its user metadata (`submitted-by`), refusing an oversized one unread."""
        extra = {"VersionId": version_id} if version_id else {}
        try:
            response = self._s3.get_object(Bucket=self._bucket, Key=key, **extra)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            raise ManifestError(f"manifest s3://{self._bucket}/{key} could not be read ({code})") from exc
        limit = self._settings.max_manifest_bytes
        body = response["Body"]
        try:
            if response.get("ContentLength", 0) > limit:
                raise ManifestError(f"manifest is larger than {limit} bytes")
            data = body.read(limit + 1)
        finally:
            body.close()
        if len(data) > limit:
            raise ManifestError(f"manifest is larger than {limit} bytes")
        return data, dict(response.get("Metadata") or {})

    def put_manifest(self, job_id: str, manifest: dict[str, Any], submitted_by: str | None = None) -> str | None:
        """Put the manifest (a new version: the intake queues it again); returns its version id."""
        return self._put_manifest(job_id, manifest, submitted_by)

    def put_manifest_once(self, job_id: str, manifest: dict[str, Any], submitted_by: str | None = None) -> bool:
        """Put the manifest unless one exists (an S3 conditional write); False when it was there."""
        try:
            self._put_manifest(job_id, manifest, submitted_by, IfNoneMatch="*")
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("PreconditionFailed", "ConditionalRequestConflict"):
                return False
            raise
        return True

    def _put_manifest(
        self, job_id: str, manifest: dict[str, Any], submitted_by: str | None, **conditions: str
    ) -> str | None:
        key = self._settings.manifest_key(job_id)
        body = encode_manifest(manifest)
        # Who asked, for the ledger: the intake sees the API's role as the putter, not the API's caller.
        metadata = {SUBMITTED_BY_METADATA: submitted_by} if submitted_by else {}
        put = self._s3.put_object(
            Bucket=self._bucket, Key=key, Body=body, ContentType="application/json", Metadata=metadata, **conditions
        )
        version = put.get("VersionId")
        return None if version in (None, "null") else str(version)

    def manifest_key(self, job_id: str) -> str:
        return self._settings.manifest_key(job_id)

    def manifest_version(self, job_id: str) -> str | object | None:
        """The current version id of the job's manifest (None in an unversioned bucket), or
        `MISSING` when it does not exist: a reader compares results and messages with it."""
        head = self._head(self._settings.manifest_key(job_id))
        if head is None:
            return MISSING
        version = head.get("VersionId")
        return None if version in (None, "null") else str(version)

    def write_result(self, result: JobResult) -> str:
        key = self._settings.results_key(result.job_id or "unknown")
        indent = 2 if len(result.files) <= PRETTY_MAX_FILES else None
        body = json.dumps(result.to_dict(), indent=indent, separators=None if indent else (",", ":")).encode()
        # The version also as metadata: whether a result answers a manifest version is one HEAD, not a
        # read of a result that may list 100,000 files.
        metadata = {VERSION_METADATA: result.manifest_version} if result.manifest_version else {}
        self._s3.put_object(Bucket=self._bucket, Key=key, Body=body, ContentType="application/json", Metadata=metadata)
        return key

    def result_version(self, job_id: str) -> str | object | None:
        """The manifest version the job's result answers (None: no version recorded), or `MISSING`."""
        head = self._head(self._settings.results_key(job_id))
        return MISSING if head is None else head.get("Metadata", {}).get(VERSION_METADATA)

    def result_location(self, job_id: str) -> str:
        return f"s3://{self._bucket}/{self._settings.results_key(job_id)}"

    def checkpoint_key(self, job_id: str) -> str:
        return f"{self._settings.results_prefix}.checkpoints/{job_id}.json.gz"

    def write_checkpoint(self, job_id: str, data: bytes) -> None:
        """The state one invocation hands to the next (see job/checkpoint.py)."""
        self._s3.put_object(
            Bucket=self._bucket, Key=self.checkpoint_key(job_id), Body=data, ContentType="application/gzip"
        )

    def read_checkpoint(self, job_id: str) -> bytes | None:
        try:
            response = self._s3.get_object(Bucket=self._bucket, Key=self.checkpoint_key(job_id))
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in _NOT_FOUND:
                return None
            raise
        return response["Body"].read()

    def found_key(self, job_id: str) -> str:
        return f"{self._settings.results_prefix}.found/{job_id}.json"

    def write_found(self, job_id: str, version: str, sources: list[list[Any]]) -> None:
        """The objects the intake found for this manifest version, in the manifest's order, each as
        [path, key, size, etag, md5]: the worker reads them instead of looking the objects up again."""
        body = json.dumps({"manifest_version": version, "sources": sources}, separators=(",", ":")).encode()
        self._s3.put_object(Bucket=self._bucket, Key=self.found_key(job_id), Body=body, ContentType="application/json")

    def read_found(self, job_id: str) -> dict[str, Any] | None:
        return self._read_json(self.found_key(job_id))

    def journal_prefix(self, job_id: str) -> str:
        return f"{self._settings.results_prefix}.journal/{job_id}/"

    def write_journal(self, job_id: str, name: str, document: dict[str, Any]) -> None:
        """One segment of the job's write-ahead journal (see job/journal.py)."""
        body = json.dumps(document, separators=(",", ":")).encode()
        key = self.journal_prefix(job_id) + name
        self._s3.put_object(Bucket=self._bucket, Key=key, Body=body, ContentType="application/json")

    def journal_names(self, job_id: str) -> list[str]:
        """The names of the job's journal segments (not those of a job whose ID extends this one's)."""
        names: list[str] = []
        paginator = self._s3.get_paginator("list_objects_v2")
        prefix = self.journal_prefix(job_id)
        for page in paginator.paginate(Bucket=self._bucket, Prefix=prefix, Delimiter="/"):
            names.extend(item["Key"][len(prefix) :] for item in page.get("Contents", []))
        return names

    def read_journal(self, job_id: str, name: str) -> dict[str, Any] | None:
        return self._read_json(self.journal_prefix(job_id) + name)

    def read_result(self, job_id: str) -> dict[str, Any] | None:
        return self._read_json(self._settings.results_key(job_id))

    def _read_json(self, key: str) -> dict[str, Any] | None:
        try:
            response = self._s3.get_object(Bucket=self._bucket, Key=key)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in _NOT_FOUND:
                return None
            raise
        try:
            document = safe_json.loads(response["Body"].read())
        except ValueError:  # not JSON, or nested too deeply: as good as no document
            return None
        return document if isinstance(document, dict) else None

    def _head(self, key: str) -> dict[str, Any] | None:
        """The object's metadata, or None when it does not exist."""
        try:
            return dict(self._s3.head_object(Bucket=self._bucket, Key=key))
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in _NOT_FOUND:
                return None
            raise
