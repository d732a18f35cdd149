"""Moves validated S3 objects into one XNAT resource, then proves they arrived intact.

Two paths, chosen per job (`UPLOAD_MODE`, default `auto`):

* **zip**: many small files go as stored zip batches, `PUT .../files/<batch>.zip?extract=true`,
  one catalog write per batch instead of one per file (XNAT rewrites the resource catalog on
  every PUT and fails overlapping writers with a 500, so parallel PUTs buy conflicts).
* **per_file**: large files stream straight from S3 into one PUT each, MD5 computed on the way.

Afterwards one listing is compared with what was sent (size and MD5).

**Integrity rule.** A file reported `uploaded` holds exactly this job's bytes, and with
`exist_ok: false` a file another writer put into XNAT is never replaced. So `overwrite=true` is
sent only where the user asked for it (`exist_ok`), or where the bytes on XNAT's disk can only be
this job's own: the path is not catalogued, and an earlier PUT of this job for it may have written
bytes there (`FileResult.put_unconfirmed`: a PUT that failed or was cut off after sending, or one
that XNAT accepted but did not catalogue). Retries never add `overwrite=true` by themselves: a
`duplicates` answer is resolved against a fresh listing instead.

**Write-ahead.** With a `WriteAhead` (the job's journal), every PUT is preceded by a durable record
of its paths and followed by one of its outcome, so a kill at any instruction leaves the knowledge
of which uncatalogued bytes can be this job's own (job/journal.py).

**Verification.** Each file in XNAT says how it was checked (`FileResult.verified`): `md5` when
XNAT's listing digest equals the MD5 of the bytes sent, `size` when XNAT lists no digest.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from ..exceptions import (
    IntegrityError,
    SourceChangedError,
    TimeBudgetExceededError,
    TransferTooLargeError,
    XnatAuthError,
    XnatDuplicateError,
    XnatError,
    XnatUploadError,
)
from ..result import FileResult, FileStatus, Verified
from ..xnat import Experiment, RemoteFile, XnatClient
from .budget import TimeBudget
from .hashing import HashingBody
from .prefetch import FETCH_WORKERS, Prefetcher
from .readahead import ReadAhead
from .sources import SourceObject, SourceStream, fetch_whole
from .zipstream import StoredZipBody, ZipEntry

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

    from ..config import Settings

ZIP_ENTRY_MAX_BYTES = 16 * 1024 * 1024  # entries are held whole while their CRC is computed
ZIP_MIN_FILES = 4  # below this, one PUT per file costs no more than a batch
ZIP_AHEAD_MAX_BYTES = 64 * 1024 * 1024  # zip entries fetched ahead of the sender, at most
READ_AHEAD_MIN_BYTES = 4 * 1024 * 1024  # smaller objects arrive in one or two reads anyway
SOCKET_BUFFERS_BYTES = 8 * 1024 * 1024  # what the kernel's buffers may accept without XNAT reading a byte
# A 500 on a zip batch: a catalog conflict passes within a retry or two; a file XNAT cannot take does not,
# and halving the batch finds it far sooner than retrying for the whole retry window at every level.
BATCH_RETRIES_ON_500 = 2
FILE_RETRIES_ON_500 = 4  # one file: 5 attempts over a few seconds, then it fails alone (the re-run tries it again)


class WriteAhead(Protocol):
    """Durable records around each PUT (see job/journal.py): `before` must be written before a
    byte is sent; `after` may be lost (the `before` record is the conservative one)."""

    def before(self, files: Sequence[FileResult], md5: dict[str, str | None]) -> None: ...

    def after(self, files: Sequence[FileResult]) -> None: ...


class _NoJournal:
    def before(self, files: Sequence[FileResult], md5: dict[str, str | None]) -> None:
        return None

    def after(self, files: Sequence[FileResult]) -> None:
        return None


@dataclass
class WorkItem:
    """One file to send: where it comes from, where its result goes, whether it replaces a file."""

    file: FileResult
    source: SourceObject
    overwrite: bool  # replaces a file of the job's listing (exist_ok)
    resent: bool = False  # sent again once in this invocation already (never loop)


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
        exist_ok: bool = False,
        journal: WriteAhead | None = None,
        prefetch: Prefetcher | None = None,
    ) -> None:
        self._xnat = xnat
        self._prefetch = prefetch  # zip entries read ahead since the invocation began (transfer/prefetch.py)
        self._journal: WriteAhead = journal or _NoJournal()
        self._s3 = s3
        self._bucket = bucket
        self._experiment = experiment
        self._scan = scan_id
        self._resource = resource_id
        self._settings = settings
        self._budget = budget
        self._on_progress = on_progress
        self._exist_ok = exist_ok
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

    def _next_batch(self, items: list[WorkItem], start: int) -> list[WorkItem]:
        """The batch starting at `items[start]`: bounded in entries, and in bytes by what the time
        allows at the measured rate (a first batch is a small probe). Always at least one item."""
        max_bytes = self._budget.batch_bytes(self._settings.zip_batch_max_bytes)
        batch: list[WorkItem] = []
        size = 0
        for item in items[start:]:
            if batch and (len(batch) >= self._settings.zip_batch_max_files or size + item.source.size > max_bytes):
                break
            batch.append(item)
            size += item.source.size
        return batch

    # -- running -----------------------------------------------------------------------------

    def run(self, work: Sequence[WorkItem]) -> str:
        """Send everything there is time for; files not started stay `pending`. Returns the mode.

        Stops starting transfers when the time budget runs out, or when a transfer failed after its
        retries and XNAT no longer answers at all (`xnat_unavailable`): hammering a server that is
        down only delays the result; the job is tried again later.
        """
        zipped, single, mode = self.plan(work)
        if self._prefetch is not None:  # what the listing settled needs no bytes
            self._prefetch.restrict([w.source for w in zipped if w.source.size])
        for send, size in self._sends(zipped, single):
            if self._stopped or not self._budget.allows(size):
                break
            send()
            self._on_progress()
        self.verify([w for w in work if w.file.status is FileStatus.UPLOADED])
        return mode

    @property
    def _stopped(self) -> bool:
        return self.xnat_unavailable or self.out_of_time or self.auth_error is not None

    def _room_for(self, size: int) -> bool:
        """May a follow-up transfer of `size` bytes (a half batch, a re-send) start now? When not, what
        it would have sent stays pending: out of time, unless XNAT is unavailable."""
        if self._stopped or not self._budget.allows(size):
            self.out_of_time = self.out_of_time or not self.xnat_unavailable
            return False
        return True

    def _sends(self, zipped: list[WorkItem], single: list[WorkItem]) -> Iterator[tuple[Callable[[], None], int]]:
        """Each unit of work with its size; zip batches are formed one at a time, so each is sized
        from the rate measured by the ones before it."""
        start = 0
        while start < len(zipped):
            batch = self._next_batch(zipped, start)
            start += len(batch)
            if len(batch) == 1 and self._budget.never_fits(batch[0].source.size):
                batch[0].file.fail(FileStatus.FAILED, _too_large(batch[0].source.size, self._budget))
                continue
            yield (lambda b=batch: self._send_batch(b)), sum(w.source.size for w in batch)
        for item in single:
            if self._budget.never_fits(item.source.size):
                item.file.fail(FileStatus.FAILED, _too_large(item.source.size, self._budget))
                continue
            yield (lambda i=item: self._send_single(i)), item.source.size

    def _note_outcome(self, error: XnatUploadError | None, files: Sequence[FileResult] = ()) -> None:
        """After a transfer: a refused service account stops everything (every later transfer would
        be refused too). A transfer that XNAT failed even after its retries (no answer, 429, 5xx) asks
        XNAT once more, cheaply and without retries: no answer means XNAT is unavailable, and those
        files failed through no fault of their own (back to `pending`, with the rest, for the job's
        next try); an answer means the failure was that transfer's own (a file XNAT refuses)."""
        if isinstance(error, XnatAuthError):
            self.auth_error = self.auth_error or error
        if not (isinstance(error, XnatError) and error.retryable):
            return
        try:
            answers = self._xnat.answers(self._experiment, self._scan, self._resource)
        except TimeBudgetExceededError:
            self.out_of_time, answers = True, False  # cannot tell: the next invocation tries them again
        if answers:
            return
        self.xnat_unavailable = self.xnat_unavailable or not self.out_of_time
        for file in files:
            file.status, file.error, file.error_code = FileStatus.PENDING, None, None

    def _send_single(self, item: WorkItem, overwrite: bool | None = None) -> None:
        if item.source.size == 0:
            self._send_batch([item], overwrite=overwrite)
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

        def after_failed_attempt(may_have_stored: bool) -> None:
            # Bytes of ours may lie on XNAT's disk only if the attempt sent some and XNAT could have kept them.
            if may_have_stored and bodies and bodies[-1].bytes_read:
                file.put_unconfirmed = True

        started = time.monotonic()
        file = item.file
        duplicate: XnatDuplicateError | None = None
        self._journal.before([file], {file.path: item.source.md5})
        try:
            file.url = self._xnat.upload_file_to_xnat(
                self._experiment, self._scan, self._resource, item.file.path, open_body,
                overwrite=item.overwrite if overwrite is None else overwrite, on_failed_attempt=after_failed_attempt,
                retries_on_500=FILE_RETRIES_ON_500,
            )  # fmt: skip
        except XnatDuplicateError as exc:
            duplicate = exc  # XNAT kept what it had: this answer wrote nothing of ours
        except TimeBudgetExceededError:
            self.out_of_time = True  # not finished: stays `pending`, the job continues it
            # Cut before XNAT answered: the time counts, and of the bytes only what socket buffers could
            # not have swallowed (a hung XNAT takes a small file whole without reading it), so that a
            # file that can never make it in one invocation shows as such.
            read = sum(b.bytes_read for b in bodies)
            self._budget.record(max(0, read - SOCKET_BUFFERS_BYTES), time.monotonic() - started)
        except XnatUploadError as exc:
            file.fail(FileStatus.FAILED, _cause(exc))
            self._note_outcome(exc, [file])
        else:
            self._note_outcome(None)
            file.put_unconfirmed = True  # ours until the listing confirms it
            file.mark_uploaded(bodies[-1].md5 if bodies and bodies[-1].complete else item.source.md5, item.source.size)
            self._budget.record(item.source.size, time.monotonic() - started)
        finally:
            file.attempts += len(bodies)
            for body in bodies:
                body.close()  # a retried or failed attempt leaves its S3 stream half read
        self._journal.after([file])
        if duplicate is not None:
            sent = bodies[-1].md5 if bodies and bodies[-1].complete else None
            self._resolve_duplicates([item], {item.file.path: sent} if sent else {})

    def _send_batch(self, batch: Sequence[WorkItem], overwrite: bool | None = None, may_split: bool = True) -> None:
        """One stored zip of `batch`, unpacked by XNAT. Refused for its content, it is split in halves
        (`may_split`), down to the file XNAT refuses."""
        self._batches += 1
        name = f"xnat-upload-batch-{int(time.time())}-{self._batches}.zip"
        entries = [ZipEntry(w.file.path, w.source.size) for w in batch]
        sources = {w.file.path: w.source for w in batch}
        bodies: list[StoredZipBody] = []

        def fetch(entry: ZipEntry) -> bytes:
            if not entry.size:
                return b""
            source = sources[entry.name]
            ready = self._prefetch.take(source) if self._prefetch is not None else None
            return ready if ready is not None else fetch_whole(self._s3, self._bucket, source)

        def open_body() -> StoredZipBody:
            # S3 GETs of small objects wait on the network, not the CPU: as many in flight as the
            # floor's, bounded in bytes.
            workers = FETCH_WORKERS
            body = StoredZipBody(
                entries, fetch, workers=workers, lookahead=workers * 2, max_ahead_bytes=ZIP_AHEAD_MAX_BYTES
            )
            bodies.append(body)
            return body

        def after_failed_attempt(may_have_stored: bool) -> None:
            if not may_have_stored or not bodies:
                return
            streamed = {digest.name for digest in bodies[-1].digests}
            for item in batch:  # entries sent whole may have been unpacked onto XNAT's disk
                if item.file.path in streamed:
                    item.file.put_unconfirmed = True

        if overwrite is None:
            overwrite = any(w.overwrite for w in batch)
        started = time.monotonic()
        kept: set[str] = set()
        self._journal.before([w.file for w in batch], {w.file.path: w.source.md5 for w in batch})
        try:
            self._xnat.upload_file_to_xnat(
                self._experiment, self._scan, self._resource, name, open_body,
                overwrite=overwrite, on_failed_attempt=after_failed_attempt, extract=True,
                content_type="application/zip", retries_on_500=BATCH_RETRIES_ON_500 if len(batch) > 1 else FILE_RETRIES_ON_500,
            )  # fmt: skip
        except XnatDuplicateError as exc:
            kept = set(exc.duplicates)  # entries XNAT kept; the others were written
        except TimeBudgetExceededError:
            self.out_of_time = True
            for item in batch:
                item.file.attempts += len(bodies)
            self._budget.record(0, time.monotonic() - started)  # nothing confirmed, as for a single file
            self._journal.after([w.file for w in batch])
            return
        except XnatUploadError as exc:
            for item in batch:
                item.file.attempts += len(bodies)
            self._journal.after([w.file for w in batch])
            if len(batch) > 1 and may_split and _points_at_the_content(exc):
                self._split(batch)
                return
            for item in batch:
                item.file.fail(FileStatus.FAILED, _cause(exc))
            self._note_outcome(exc, [item.file for item in batch])
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
            file.put_unconfirmed = True
            file.url = self._xnat.file_url(self._experiment, self._scan, self._resource, file.path)
            file.mark_uploaded(digests.get(file.path, item.source.md5), item.source.size)
        self._journal.after([w.file for w in batch])
        self._budget.record(sum(w.source.size for w in batch), time.monotonic() - started)
        if kept:
            self._resolve_duplicates([w for w in batch if w.file.path in kept], digests)

    def _split(self, batch: Sequence[WorkItem]) -> None:
        """A batch XNAT refused for its content: send each half on its own, down to single files,
        so that only the file XNAT refuses fails (a handful of extra PUTs, not a failed batch).

        Splitting goes on only where it works: when nothing of the first half could be stored, down
        to its single files (an XNAT that refuses every write: a full disk), the second half is sent
        once, whole, and not split. So a refusing XNAT costs about 2 x log2(n) PUTs, not 2 x n."""
        middle = len(batch) // 2
        worked = True
        for half in (batch[:middle], batch[middle:]):
            if not self._room_for(sum(item.source.size for item in half)):
                return  # the rest stays pending
            if len(half) == 1 and half[0].source.size:
                self._send_single(half[0])  # alone, its own PUT: the error names the file
            else:
                self._send_batch(half, may_split=worked)
            worked = any(item.file.status is FileStatus.UPLOADED for item in half)

    # -- the integrity rule ------------------------------------------------------------------

    def _may_overwrite(self, item: WorkItem, remote: RemoteFile | None) -> bool:
        """`overwrite=true` only where asked for (exist_ok) or where the bytes on XNAT's disk can
        only be this job's own (not catalogued, and a PUT of ours may have left them)."""
        return self._exist_ok or (remote is None and item.file.put_unconfirmed)

    def _resolve_duplicates(self, items: Sequence[WorkItem], sent_md5: dict[str, str]) -> None:
        """XNAT answered `duplicates` for files the job's listing did not have: find out why.

        * catalogued with the bytes this job sent: they are in place (a lost answer to an earlier
          attempt of ours, or an identical copy from someone else);
        * catalogued with other bytes: another writer's file. Kept (exist_ok false) or replaced
          (exist_ok true);
        * not catalogued: bytes left on disk by a PUT that died before its catalog write. Ours
          (`put_unconfirmed`) are sent again with `overwrite=true`, as one batch; anyone else's
          (an upload in progress, or failed) are never replaced without exist_ok.
        """
        try:
            listing = self._xnat.list_resource_files(self._experiment, self._scan, self._resource)
        except XnatUploadError as exc:  # XNAT failing, or no time left to ask: settled on the next try
            self._unverified(items, exc)
            return
        resend: list[WorkItem] = []
        for item in items:
            file = item.file
            remote = listing.get(file.path)
            expected = sent_md5.get(file.path) or item.source.md5
            if (
                remote is not None
                and expected
                and remote.digest == expected
                and remote.size in (None, item.source.size)
            ):
                file.url = self._xnat.file_url(self._experiment, self._scan, self._resource, file.path)
                if file.put_unconfirmed:  # our own earlier attempt got in; its answer was lost
                    file.mark_uploaded(remote.digest, item.source.size)
                    file.put_unconfirmed = False
                else:
                    file.status, file.identical, file.md5, file.bytes = (
                        FileStatus.ALREADY_EXISTS, True, remote.digest, item.source.size,
                    )  # fmt: skip
                    file.error = file.error_code = None
                file.verified = Verified.MD5
                continue
            if self._may_overwrite(item, remote) and not item.resent:
                resend.append(item)
            elif remote is not None:
                _kept_existing(file, "a file with other content appeared in XNAT during the job and was kept")
            else:
                file.status, file.identical, file.url = FileStatus.FAILED, None, None
                file.error = (
                    "XNAT holds uncatalogued bytes at this path that this job did not write (another "
                    "writer's upload in progress, or one that failed); not replaced because exist_ok is false"
                )
                file.error_code = XnatDuplicateError.error_code
        self._resend(resend)

    def _resend(self, items: Sequence[WorkItem]) -> None:
        """Send again once, with `overwrite=true` (callers checked the integrity rule): as one zip
        batch when there are several, so a thousand orphans cost one PUT, not a thousand."""
        items = [item for item in items if not item.resent]
        if not items:
            return
        for item in items:
            item.resent = True
            item.file.status = FileStatus.PENDING
        if not self._room_for(sum(item.source.size for item in items)):
            return
        zipped = [i for i in items if i.source.size <= ZIP_ENTRY_MAX_BYTES]
        if self._settings.upload_mode == "per_file" or len(zipped) < ZIP_MIN_FILES:
            zipped = [i for i in items if i.source.size == 0]
        single = [i for i in items if i not in zipped]
        if zipped:
            self._send_batch(zipped, overwrite=True)
        for item in single:
            if not self._room_for(item.source.size):
                return
            self._send_single(item, overwrite=True)

    # -- verification ------------------------------------------------------------------------

    def _unverified(self, items: Sequence[WorkItem], exc: XnatUploadError) -> None:
        """Sent, but XNAT could not be asked whether it catalogued them: not `uploaded` (unproven),
        not `failed` (probably there). They stay `pending` with their MD5, and the job's next
        invocation settles them from its listing without sending them again."""
        for item in items:
            item.file.status, item.file.url = FileStatus.PENDING, None
            item.file.error = f"sent to XNAT but not verified yet ({exc.message})"
            item.file.error_code = None
        if isinstance(exc, XnatAuthError):
            self.auth_error = self.auth_error or exc
        elif isinstance(exc, TimeBudgetExceededError):
            self.out_of_time = True
        elif isinstance(exc, XnatError) and exc.retryable:
            self.xnat_unavailable = True

    def verify(self, uploaded: Sequence[WorkItem], resend: bool = True) -> None:
        """Compare every uploaded file with XNAT's listing. A file missing from the catalog is sent
        again once (its bytes are ours); a different size or MD5 only with exist_ok."""
        if not uploaded:
            return
        try:
            listing = self._xnat.list_resource_files(self._experiment, self._scan, self._resource)
        except XnatUploadError as exc:  # XNAT failing, or no time left to ask
            self._unverified(uploaded, exc)
            return
        wrong: list[WorkItem] = []
        for item in uploaded:
            file = item.file
            remote = listing.get(file.path)
            problem = None
            if remote is None:
                problem = "missing from XNAT's catalog after upload"
            elif remote.size is not None and remote.size != item.source.size:
                problem = f"XNAT lists {remote.size} bytes, {item.source.size} were sent"
            elif remote.digest and file.md5 and remote.digest != file.md5:
                problem = f"XNAT lists MD5 {remote.digest}, {file.md5} was sent"
            if problem is None:
                file.put_unconfirmed = False  # catalogued with our bytes: nothing of ours is left over
                file.verified = Verified.MD5 if remote.digest and file.md5 else Verified.SIZE
                continue
            if not self._may_overwrite(item, remote):
                problem += "; not sent again because exist_ok is false and the file XNAT holds may be another writer's"
            file.status, file.error, file.error_code = FileStatus.FAILED, problem, IntegrityError.error_code
            if resend and self._may_overwrite(item, remote):
                wrong.append(item)
        if wrong:
            self._resend(wrong)
            self.verify([w for w in wrong if w.file.status is FileStatus.UPLOADED], resend=False)


def _kept_existing(file: FileResult, message: str) -> None:
    """XNAT answered `duplicates`: someone else's file is there; ours was not stored."""
    file.status = FileStatus.ALREADY_EXISTS
    file.identical = False
    file.error = message
    file.error_code = XnatDuplicateError.error_code


def _too_large(size: int, budget: TimeBudget) -> TransferTooLargeError:
    rate = budget.throughput.rate or 0.0
    return TransferTooLargeError(
        f"{size} bytes cannot be sent within one invocation at the rate XNAT accepted so far "
        f"({_per_second(rate)}); raise the function timeout or send this file another way"
    )


def _per_second(rate: float) -> str:
    for unit, scale in (("MiB/s", 1 << 20), ("KiB/s", 1 << 10)):
        if rate >= scale:
            return f"{rate / scale:.1f} {unit}"
    return f"{rate:.0f} B/s"


def _points_at_the_content(exc: XnatUploadError) -> bool:
    """XNAT refused what was sent (a 500 from its own processing, a 4xx), or one object changed: a
    smaller batch may pass. Not XNAT being unreachable or overloaded (no answer, 429, 502-504),
    which splitting would only hammer, nor a refused session (401, 403)."""
    if isinstance(_cause(exc), SourceChangedError):
        return True
    if not isinstance(exc, XnatError) or exc.status is None:
        return False
    return exc.status == 500 or (400 <= exc.status < 500 and exc.status not in (401, 403, 429))


def _cause(exc: XnatUploadError) -> XnatUploadError:
    """Report the S3 side when a read failed underneath the HTTP client."""
    cause = exc.__cause__
    while cause is not None:
        if isinstance(cause, SourceChangedError):
            return cause
        cause = cause.__cause__
    return exc
