"""`submit --from-dir DIR`: put a manifest's images from a local folder under `<IMAGES_PREFIX><net_id>/upload/`.

Every file the manifest lists must be in DIR (checked before anything is sent, all missing ones named at once);
the keys are the function's own (`confined_keys`), so what is put is what the intake will look for. boto3's
managed transfer sends them: parallel, multipart above `TransferConfig.multipart_threshold`, streamed from disk
(memory stays at a few chunks per thread, whatever the file size), with a progress callback.

Example::

    files = local_files(Path("out"), manifest.files_relative_paths_to_upload)   # LocalFilesError if any missing
    upload_files(s3, "bucket", "net-1/upload/", files, on_progress=print)
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from s3transfer.subscribers import BaseSubscriber

from ..manifest import confined_keys

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

MiB = 1024 * 1024
MULTIPART_THRESHOLD = 16 * MiB  # below: one PUT; above: parts of MULTIPART_CHUNK, several at a time
MULTIPART_CHUNK = 16 * MiB
MAX_CONCURRENCY = 16  # requests in flight, across files and parts
MISSING_SHOWN = 10  # missing files named in the error; the count says how many more


class LocalFilesError(Exception):
    """DIR is not a folder, or does not hold files the manifest lists (or they are not regular files)."""

    def __init__(self, folder: Path, missing: Sequence[str] = ()) -> None:
        if not missing:
            message = f"--from-dir {folder}: not a folder (nothing was uploaded)"
        else:
            shown = ", ".join(repr(path) for path in missing[:MISSING_SHOWN])
            more = f" and {len(missing) - MISSING_SHOWN} more" if len(missing) > MISSING_SHOWN else ""
            message = (
                f"{len(missing)} file{'s' if len(missing) != 1 else ''} of the manifest not found under {folder}: "
                f"{shown}{more}. --from-dir takes the folder that holds files_relative_paths_to_upload as the "
                "manifest names them (nothing was uploaded)"
            )
        super().__init__(message)
        self.message = message
        self.missing = list(missing)


@dataclass(frozen=True)
class LocalFile:
    path: str  # as the manifest names it
    source: Path  # on disk
    size: int


@dataclass
class UploadProgress:
    files_total: int
    bytes_total: int
    files_done: int = 0
    bytes_done: int = 0

    def line(self) -> str:
        from .render import human_bytes

        return (
            f"uploading images: {self.files_done}/{self.files_total} files, "
            f"{human_bytes(self.bytes_done)}/{human_bytes(self.bytes_total)}"
        )


def local_files(folder: Path, paths: Sequence[str]) -> list[LocalFile]:
    """Each path's file under `folder`; LocalFilesError naming every one that is missing or not a regular file
    (a path that resolves outside the folder, through a symlink say, counts as missing)."""
    root = folder.resolve()
    if not root.is_dir():
        raise LocalFilesError(folder)
    found: list[LocalFile] = []
    missing: list[str] = []
    for path in paths:
        source = (root / path).resolve()
        if source.is_file() and source.is_relative_to(root):
            found.append(LocalFile(path, source, source.stat().st_size))
        else:
            missing.append(path)
    if missing:
        raise LocalFilesError(folder, missing)
    return found


def upload_files(
    s3: S3Client,
    bucket: str,
    upload_prefix: str,
    files: Sequence[LocalFile],
    *,
    on_progress: Callable[[UploadProgress], None] | None = None,
    concurrency: int = MAX_CONCURRENCY,
) -> UploadProgress:
    """Put every file at its key under `upload_prefix` with boto3's transfer manager; raises the first
    failure (after the others finished or failed). `on_progress` is called from the caller's thread."""
    from boto3.s3.transfer import TransferConfig, create_transfer_manager

    keys, refused = confined_keys(upload_prefix, [f.path for f in files])
    if refused:  # the manifest was validated first: only a bug gets here
        raise next(iter(refused.values()))
    progress = UploadProgress(files_total=len(files), bytes_total=sum(f.size for f in files))
    lock = threading.Lock()
    changed = threading.Event()

    def sent(amount: int) -> None:
        with lock:
            progress.bytes_done += amount
        changed.set()

    def finished(_: Any) -> None:
        with lock:
            progress.files_done += 1
        changed.set()

    config = TransferConfig(
        multipart_threshold=MULTIPART_THRESHOLD,
        multipart_chunksize=MULTIPART_CHUNK,
        max_concurrency=concurrency,
        use_threads=True,
    )
    subscribers = [_Subscriber(sent, finished)]
    with create_transfer_manager(s3, config) as manager:
        futures = [manager.upload(os.fspath(f.source), bucket, keys[f.path], subscribers=subscribers) for f in files]
        pending = list(futures)
        while pending:
            changed.wait(0.5)
            changed.clear()
            pending = [future for future in pending if not future.done()]
            if on_progress is not None:
                with lock:
                    snapshot = UploadProgress(**vars(progress))
                on_progress(snapshot)
        for future in futures:
            future.result()  # the first failure, as boto3 raised it
    return progress


class _Subscriber(BaseSubscriber):
    """s3transfer's subscriber interface: bytes as they go, and each file's end."""

    def __init__(self, sent: Callable[[int], None], finished: Callable[[Any], None]) -> None:
        self._sent = sent
        self._finished = finished

    def on_progress(self, future: Any, bytes_transferred: int, **_: Any) -> None:
        self._sent(bytes_transferred)

    def on_done(self, future: Any, **_: Any) -> None:
        self._finished(future)
