"""The job message (JobQueue.fifo's body) and the two ids that make FIFO do our locking.

* `MessageGroupId` = hex SHA-256 of `"<central_hub_project_id>|<accession_id>|<scan_id>|<resource_id>"`:
  SQS delivers one message of a group at a time, so one XNAT resource has one writer.
* `MessageDeduplicationId` = hex SHA-256 of `"<job_id>|<manifest_version>|<continuation>"`, with an
  empty string for a `null` version (an unversioned bucket): a duplicate S3 event or a producer's
  retry within SQS's five-minute window is dropped by the queue itself.
"""

from __future__ import annotations

import hashlib
import json
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr, ValidationError

from ...exceptions import InvalidJobMessageError

if TYPE_CHECKING:
    from ...manifest import JobManifest


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def message_group_id(manifest: JobManifest) -> str:
    """The job's XNAT target: every job writing into the same resource shares this group."""
    return _sha256(
        f"{manifest.central_hub_project_id}|{manifest.accession_id}|{manifest.scan_id}|{manifest.resource_id}"
    )


def deduplication_id(job_id: str, manifest_version: str | None, continuation: int) -> str:
    return _sha256(f"{job_id}|{manifest_version or ''}|{continuation}")


class JobMessage(BaseModel):
    """`{"job_id", "manifest_key", "manifest_version", "continuation"}`: enough to find the manifest
    version and the job's checkpoint; everything else is read from S3, so a message never grows."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    job_id: StrictStr = Field(min_length=1, max_length=1024)
    manifest_key: StrictStr = Field(min_length=1, max_length=1024)
    manifest_version: StrictStr | None
    continuation: StrictInt = Field(ge=0)

    @property
    def deduplication_id(self) -> str:
        return deduplication_id(self.job_id, self.manifest_version, self.continuation)

    def next(self) -> JobMessage:
        """The message that continues this job in a new invocation."""
        return self.model_copy(update={"continuation": self.continuation + 1})

    def to_body(self) -> str:
        return json.dumps(self.model_dump(), separators=(",", ":"))

    @classmethod
    def from_body(cls, body: str) -> JobMessage:
        try:
            return cls.model_validate_json(body)
        except ValidationError as exc:
            problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'body'}: {e['msg']}" for e in exc.errors()[:5])
            raise InvalidJobMessageError(f"not a job message: {problems}") from None
