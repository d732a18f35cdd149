"""Moves validated S3 objects into one XNAT resource, then proves they arrived intact.

Two paths, chosen per job (`UPLOAD_MODE`, default `auto`):

* **zip**: many small files go as stored zip batches, `PUT .../files/<batch>.zip?extract=true`,
  one catalog write per batch instead of one per file (XNAT rewrites the resource catalog on
  every PUT and fails overlapping writers with a 500, so parallel PUTs buy conflicts).
* **per_file**: large files stream straight from S3 into one PUT each, MD5 computed on the way.

Afterwards one listing is compared with what was sent (size and MD5); a mismatch or a file
missing from the catalog is re-sent once with `overwrite=true`, then reported failed.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..exceptions import (
    IntegrityError,
    SourceChangedError,
    TimeBudgetExceededError,
    XnatAuthError,
    XnatDuplicateError,
    XnatError,
    XnatUploadError,
)
from ..result import FileResult, FileStatus
from ..xnat import Experiment, XnatClient
from .hashing import HashingBody
from .readahead import ReadAhead
from .sources import SourceObject, SourceStream, fetch_whole
from .zipstream import StoredZipBody, ZipEntry

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

    from ..config import Settings

ZIP_ENTRY_MAX_BYTES = 16 * 1024 * 1024  # entries are held whole while their CRC is computed
ZIP_MIN_FILES = 4  # below this, one PUT per file costs no more than a batch
ASSUMED_RATE = 20 * 1024 * 1024  # bytes/s until a transfer has been measured
ZIP_AHEAD_MAX_BYTES = 64 * 1024 * 1024  # zip entries fetched ahead of the sender, at most
UNAVAILABLE_AFTER = 3  # transfers in a row that XNAT failed after retries: stop starting new ones
READ_AHEAD_MIN_BYTES = 4 * 1024 * 1024  # smaller objects arrive in one or two reads anyway


@dataclass
class WorkItem:
    """One file to send: where it comes from, where its result goes, whether it replaces a file."""

    file: FileResult
    source: SourceObject
    overwrite: bool


class TimeBudget:
    """Tells whether there is time to start a transfer of `size` bytes, from measured throughput."""

    def __init__(self, remaining_seconds: Callable[[], float] | None, margin_seconds: float) -> None:
        self._remaining = remaining_seconds
        self._margin = margin_seconds
        self._bytes = 0
        self._seconds = 0.0

    def allows(self, size: int) -> bool:
        if self._remaining is None:
            return True
        rate = self._bytes / self._seconds if self._seconds > 0.05 and self._bytes else ASSUMED_RATE
        return self._remaining() > self._margin + size / rate

    def record(self, size: int, seconds: float) -> None:
        self._bytes += size
        self._seconds += seconds


class TransferEngine:
    """Uploads work items into one resource; results are written into each item's FileResult."""

    def __init__(
        self,
        xnat: XnatClient,
        s3: S3Client,
        bucket: str,
        experiment: Experiment,
        scan_id: str,
        resource_id: str,
        settings: Settings,
        budget: TimeBudget,
        on_progress: Callable[[], object] = lambda: None,
    ) -> None:
        self._xnat = xnat
        self._s3 = s3
        self._bucket = bucket
        self._experiment = experiment
        self._scan = scan_id
        self._resource = resource_id
        self._settings = settings
        self._budget = budget
        self._on_progress = on_progress
        self._failed_in_a_row = 0
        self.xnat_unavailable = False
        self.auth_error: XnatAuthError | None = None  # XNAT refused the service account: stop
        self.out_of_time = False
        self._batches = 0

    # -- planning ----------------------------------------------------------------------------

    def plan(self, work: Sequence[WorkItem]) -> tuple[list[WorkItem], list[WorkItem], str]:
        """Split work into (zip batch items, per-file items) and name the mode for the result."""
        mode = self._settings.upload_mode
        small = [w for w in work if w.source.size <= ZIP_ENTRY_MAX_BYTES]
        if mode == "per_file":
            return [], list(work), "per_file"
        if mode == "auto" and len(small) < ZIP_MIN_FILES:
            # Zero-byte files cannot be sent raw (XNAT answers 500): they always travel zipped.
            empty = [w for w in work if w.source.size == 0]
            rest = [w for w in work if w.source.size > 0]
            return empty, rest, "per_file" if not empty else "mixed"
        zipped_ids = {id(w) for w in small}
        large = [w for w in work if id(w) not in zipped_ids]
        return small, large, "zip" if not large else "mixed"

    def batches(self, items: Sequence[WorkItem]) -> list[list[WorkItem]]:
        """Batches bounded in bytes and entries, so a failed batch costs little to retry."""
        batches: list[list[WorkItem]] = []
        current: list[WorkItem] = []
        size = 0
        for item in items:
            if current and (
                len(current) >= self._settings.zip_batch_max_files
                or size + item.source.size > self._settings.zip_batch_max_bytes
            ):
                batches.append(current)
                current, size = [], 0
            current.append(item)
            size += item.source.size
        if current:
            batches.append(current)
        return batches

    # -- running -----------------------------------------------------------------------------

    def run(self, work: Sequence[WorkItem]) -> str:
        """Send everything there is time for; files not started stay `pending`. Returns the mode.

        Stops starting transfers when the time budget runs out, or when XNAT has failed
        `UNAVAILABLE_AFTER` transfers in a row after their retries (`xnat_unavailable`): hammering
        a server that is down only delays the result; a re-run finishes the job.
        """
        zipped, single, mode = self.plan(work)
        sends: list[tuple[Callable[[], None], int]] = [
            ((lambda b=batch: self._send_batch(b)), sum(w.source.size for w in batch)) for batch in self.batches(zipped)
        ]
        sends += [((lambda i=item: self._send_single(i)), item.source.size) for item in single]
        for send, size in sends:
            if self.xnat_unavailable or self.out_of_time or self.auth_error or not self._budget.allows(size):
                break
            send()
            self._on_progress()
        self.verify([w for w in work if w.file.status is FileStatus.UPLOADED])
        return mode

    def _note_outcome(self, error: XnatUploadError | None) -> None:
        """Count transfers in a row that XNAT failed even after retries (down, 5xx, timeouts);
        note a refused service account (every later transfer would be refused too)."""
        if isinstance(error, XnatAuthError):
            self.auth_error = self.auth_error or error
        if isinstance(error, XnatError) and error.retryable:
            self._failed_in_a_row += 1
            self.xnat_unavailable = self.xnat_unavailable or self._failed_in_a_row >= UNAVAILABLE_AFTER
        else:
            self._failed_in_a_row = 0

    def _send_single(self, item: WorkItem) -> None:
        if item.source.size == 0:
            self._send_batch([item])
            return
        bodies: list[HashingBody] = []

        def open_body() -> HashingBody:
            stream = SourceStream(self._s3, self._bucket, item.source)
            body = HashingBody(
                ReadAhead(stream) if item.source.size > READ_AHEAD_MIN_BYTES else stream,
                item.source.size,
                known_md5=item.source.md5,
            )
            bodies.append(body)
            return body

        started = time.monotonic()
        file = item.file
        duplicate: XnatDuplicateError | None = None
        try:
            file.url = self._xnat.upload_file_to_xnat(
                self._experiment, self._scan, self._resource, item.file.path, open_body,
                overwrite=item.overwrite, overwrite_on_retry=True,
            )  # fmt: skip
        except XnatDuplicateError as exc:
            duplicate = exc
        except TimeBudgetExceededError:
            self.out_of_time = True  # not sent: stays `pending`, a re-run does it
        except XnatUploadError as exc:
            file.fail(FileStatus.FAILED, _cause(exc))
            self._note_outcome(exc)
        else:
            self._note_outcome(None)
            file.mark_uploaded(bodies[-1].md5 if bodies and bodies[-1].complete else item.source.md5, item.source.size)
            self._budget.record(item.source.size, time.monotonic() - started)
        finally:
            file.attempts += len(bodies)
            for body in bodies:
                body.close()  # a retried or failed attempt leaves its S3 stream half read
        if duplicate is not None:
            sent = bodies[-1].md5 if bodies and bodies[-1].complete else None
            self._resolve_duplicates([item], duplicate, {item.file.path: sent} if sent else {})

    def _send_batch(self, batch: Sequence[WorkItem]) -> None:
        self._batches += 1
        name = f"xnat-upload-batch-{int(time.time())}-{self._batches}.zip"
        entries = [ZipEntry(w.file.path, w.source.size) for w in batch]
        sources = {w.file.path: w.source for w in batch}
        bodies: list[StoredZipBody] = []

        def fetch(entry: ZipEntry) -> bytes:
            return fetch_whole(self._s3, self._bucket, sources[entry.name]) if entry.size else b""

        def open_body() -> StoredZipBody:
            # S3 GETs of small objects wait on the network, not the CPU: many in flight, bounded in bytes.
            workers = self._settings.upload_concurrency * 4
            body = StoredZipBody(
                entries, fetch, workers=workers, lookahead=workers * 2, max_ahead_bytes=ZIP_AHEAD_MAX_BYTES
            )
            bodies.append(body)
            return body

        started = time.monotonic()
        kept: set[str] = set()
        duplicate: XnatDuplicateError | None = None
        try:
            self._xnat.upload_file_to_xnat(
                self._experiment, self._scan, self._resource, name, open_body,
                overwrite=any(w.overwrite for w in batch), overwrite_on_retry=True,
                extract=True, content_type="application/zip",
            )  # fmt: skip
        except XnatDuplicateError as exc:
            kept, duplicate = set(exc.duplicates), exc
        except TimeBudgetExceededError:
            self.out_of_time = True
            for item in batch:
                item.file.attempts += len(bodies)
            return
        except XnatUploadError as exc:
            self._note_outcome(exc)
            for item in batch:
                item.file.fail(FileStatus.FAILED, _cause(exc))
                item.file.attempts += len(bodies)
            return
        finally:
            for body in bodies:
                body.close()
        self._note_outcome(None)
        digests = {d.name: d.md5 for d in bodies[-1].digests} if bodies else {}
        for item in batch:
            file = item.file
            file.attempts += len(bodies)
            if file.path in kept:
                continue
            file.url = self._xnat.file_url(self._experiment, self._scan, self._resource, file.path)
            file.mark_uploaded(digests.get(file.path, item.source.md5), item.source.size)
        self._budget.record(sum(w.source.size for w in batch), time.monotonic() - started)
        if duplicate is not None and kept:
            self._resolve_duplicates([w for w in batch if w.file.path in kept], duplicate, digests)

    def _resolve_duplicates(self, items: Sequence[WorkItem], exc: XnatDuplicateError, sent_md5: dict[str, str]) -> None:
        """XNAT answered `duplicates` for files the job's listing did not have: find out why.

        Either someone else put the file meanwhile (it is catalogued: compare its MD5), or an
        earlier PUT died after writing the bytes but before cataloguing them (XNAT's catalog
        conflict): such a file is in no listing and only `overwrite=true` gets it in, so it is
        re-sent once with overwrite. Without this a re-run could never finish the file.
        """
        try:
            listing = self._xnat.list_resource_files(self._experiment, self._scan, self._resource)
        except XnatUploadError:  # XNAT failing, or no time left to ask (as in `verify`)
            listing = None
        orphans: list[WorkItem] = []
        for item in items:
            file = item.file
            remote = listing.get(file.path) if listing is not None else None
            if listing is not None and remote is None and not item.overwrite:
                orphans.append(item)
                continue
            expected = sent_md5.get(file.path) or item.source.md5
            if (
                remote is not None
                and expected
                and remote.digest == expected
                and remote.size in (None, item.source.size)
            ):
                file.status, file.identical, file.md5, file.bytes = (
                    FileStatus.ALREADY_EXISTS, True, remote.digest, item.source.size,
                )  # fmt: skip
                file.error = file.error_code = None
                file.url = self._xnat.file_url(self._experiment, self._scan, self._resource, file.path)
                continue
            self._kept_existing(file, XnatDuplicateError(exc.message, exc.status, [file.path]))
        for item in orphans:
            self._resend(item)

    def _resend(self, item: WorkItem) -> None:
        """Send once more with overwrite=true, if the time budget still allows it."""
        if self.out_of_time or not self._budget.allows(item.source.size):
            self.out_of_time = True
            return
        item.overwrite = True
        self._send_single(item)

    @staticmethod
    def _kept_existing(file: FileResult, exc: XnatDuplicateError) -> None:
        """XNAT answered `duplicates`: someone else's file is there; ours was not stored."""
        file.status = FileStatus.ALREADY_EXISTS
        file.identical = False
        file.error = f"a file appeared in XNAT during the job and was kept: {exc.message}"
        file.error_code = exc.error_code

    # -- verification ------------------------------------------------------------------------

    def verify(self, uploaded: Sequence[WorkItem], resend: bool = True) -> None:
        """Compare every uploaded file with XNAT's listing; re-send a mismatch once, then fail it."""
        if not uploaded:
            return
        try:
            listing = self._xnat.list_resource_files(self._experiment, self._scan, self._resource)
        except XnatUploadError as exc:  # XNAT failing, refusing the service account, or no time left to ask
            if isinstance(exc, XnatAuthError):
                self.auth_error = self.auth_error or exc
            for item in uploaded:  # XNAT accepted them: not failed, only unproven; a re-run verifies them
                item.file.status, item.file.url = FileStatus.PENDING, None
                item.file.error = f"sent to XNAT but not verified ({exc.message}); re-put the manifest to verify it"
                item.file.error_code = exc.error_code
            return
        wrong: list[WorkItem] = []
        for item in uploaded:
            remote = listing.get(item.file.path)
            problem = None
            if remote is None:
                problem = "missing from XNAT's catalog after upload"
            elif remote.size is not None and remote.size != item.source.size:
                problem = f"XNAT lists {remote.size} bytes, {item.source.size} were sent"
            elif remote.digest and item.file.md5 and remote.digest != item.file.md5:
                problem = f"XNAT lists MD5 {remote.digest}, {item.file.md5} was sent"
            if problem is not None:
                item.file.status = FileStatus.FAILED
                item.file.error, item.file.error_code = problem, IntegrityError.error_code
                wrong.append(item)
        if wrong and resend:
            for item in wrong:
                self._resend(item)
            self.verify([w for w in wrong if w.file.status is FileStatus.UPLOADED], resend=False)


def _cause(exc: XnatUploadError) -> XnatUploadError:
    """Report the S3 side when a read failed underneath the HTTP client."""
    cause = exc.__cause__
    while cause is not None:
        if isinstance(cause, SourceChangedError):
            return cause
        cause = cause.__cause__
    return exc
