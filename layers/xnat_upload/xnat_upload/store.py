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


class JobStore:
    def __init__(self, s3: S3Client, settings: Settings) -> None:
        self._s3 = s3
        self._settings = settings
        self._bucket = settings.data_bucket

    def load_manifest(self, key: str, version_id: str | None = None) -> bytes:
        """The manifest's bytes, refusing an oversized one before reading it."""
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
        return data

    def put_manifest(self, job_id: str, manifest: dict[str, Any]) -> str:
        """Put the manifest (a new version: the trigger runs it again)."""
        return self._put_manifest(job_id, manifest)

    def put_manifest_once(self, job_id: str, manifest: dict[str, Any]) -> bool:
        """Put the manifest unless one exists (an S3 conditional write); False when it was there."""
        try:
            self._put_manifest(job_id, manifest, IfNoneMatch="*")
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("PreconditionFailed", "ConditionalRequestConflict"):
                return False
            raise
        return True

    def _put_manifest(self, job_id: str, manifest: dict[str, Any], **conditions: str) -> str:
        key = self._settings.manifest_key(job_id)
        body = json.dumps(manifest).encode()
        self._s3.put_object(Bucket=self._bucket, Key=key, Body=body, ContentType="application/json", **conditions)
        return key

    def manifest_exists(self, job_id: str) -> bool:
        return self._exists(self._settings.manifest_key(job_id))

    def write_result(self, result: JobResult) -> str:
        key = self._settings.results_key(result.job_id or "unknown")
        body = json.dumps(result.to_dict(), indent=2).encode()
        self._s3.put_object(Bucket=self._bucket, Key=key, Body=body, ContentType="application/json")
        return key

    def progress_key(self, job_id: str) -> str:
        # Its own folder: no job ID (they start with a letter or digit) maps a result onto it.
        return f"{self._settings.results_prefix}.progress/{job_id}.json"

    def write_progress(self, job_id: str, progress: dict[str, Any]) -> None:
        body = json.dumps(progress).encode()
        self._s3.put_object(
            Bucket=self._bucket, Key=self.progress_key(job_id), Body=body, ContentType="application/json"
        )

    def read_progress(self, job_id: str) -> dict[str, Any] | None:
        return self._read_json(self.progress_key(job_id))

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

    def known_md5(self, job_id: str) -> dict[tuple[str, str], str]:
        """(path, S3 ETag) -> MD5 of files an earlier run of this job sent to or found in XNAT."""
        previous = self.read_result(job_id) or {}
        known: dict[tuple[str, str], str] = {}
        entries = previous.get("files")
        for entry in entries if isinstance(entries, list) else []:  # a hand-edited result must not crash a re-run
            if not isinstance(entry, dict) or not entry.get("md5") or not entry.get("source_etag"):
                continue
            # `pending` with an MD5: sent (that MD5 is of the bytes sent) but not verified in time.
            if entry.get("status") in ("uploaded", "pending") or (
                entry.get("status") == "already_exists" and entry.get("identical")
            ):
                known[(str(entry.get("path")), str(entry["source_etag"]))] = str(entry["md5"])
        return known

    def _exists(self, key: str) -> bool:
        try:
            self._s3.head_object(Bucket=self._bucket, Key=key)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in _NOT_FOUND:
                return False
            raise
        return True
