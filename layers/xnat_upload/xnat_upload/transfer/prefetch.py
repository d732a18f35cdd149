"""Small objects fetched ahead of the zip batches that send them, from the start of the invocation.

Why: a job's XNAT login, its lookups (project, session, scan, resource, the resource's listing)
and the journal write before each PUT take a few tens of requests' time, and the zip body cannot
start before them; the S3 reads need none of it. So the reads start as soon as the objects are
found, in parallel with XNAT, and the zip body takes the bytes that are ready (`take`). Across
batches too: while one batch is catalogued and verified, the next one's objects are read.

Bounded in memory: at most `max_bytes` fetched and not yet taken (always at least one object).
Every read is pinned to the validated ETag (`fetch_whole`), exactly as the zip body's own reads
are; an object whose prefetch failed is not handed over (`take` answers None) and the caller
reads it itself, so a failure is met where it was always met, with the same retries.

Example::

    ahead = Prefetcher(s3, bucket, [source for source in candidates])
    data = ahead.take(source)  # the bytes, or None: read it yourself
    ahead.close()
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING

from .s3_deadline import carry_context
from .sources import SourceObject, fetch_whole

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

FETCH_WORKERS = 32  # GETs in flight: what the floor uses; small GETs wait on the network, not the CPU
PREFETCH_MAX_BYTES = 32 * 1024 * 1024


class Prefetcher:
    """Fetches `sources` in order, at most `max_bytes` ahead of what was taken."""

    def __init__(
        self,
        s3: S3Client,
        bucket: str,
        sources: Sequence[SourceObject],
        *,
        workers: int = FETCH_WORKERS,
        max_bytes: int = PREFETCH_MAX_BYTES,
    ) -> None:
        self._s3 = s3
        self._bucket = bucket
        self._max_bytes = max_bytes
        self._lock = threading.Lock()
        self._order: list[SourceObject] = list(sources)
        self._next = 0  # index in _order of the next object to submit
        self._ahead: dict[str, tuple[SourceObject, Future[bytes]]] = {}
        self._ahead_bytes = 0
        self._closed = False
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="prefetch")
        self._fetch = carry_context(self._fetch_one)  # under the caller's S3 deadline
        with self._lock:
            self._fill()

    def _fetch_one(self, source: SourceObject) -> bytes:
        return fetch_whole(self._s3, self._bucket, source)

    def _fill(self) -> None:
        """Submit the next objects while the bound allows (at least one when nothing is ahead)."""
        while not self._closed and self._next < len(self._order):
            source = self._order[self._next]
            if self._ahead and self._ahead_bytes + source.size > self._max_bytes:
                return
            self._next += 1
            if source.path in self._ahead:
                continue
            self._ahead[source.path] = (source, self._pool.submit(self._fetch, source))
            self._ahead_bytes += source.size

    def restrict(self, sources: Sequence[SourceObject]) -> None:
        """Only these objects, in this order, are wanted now (the others were settled without a
        transfer): what was fetched for any other is dropped."""
        with self._lock:
            wanted = {s.path: s.etag for s in sources}
            for path in [p for p, (s, _) in self._ahead.items() if wanted.get(p) != s.etag]:
                self._drop(path)
            self._order = [s for s in sources if s.path not in self._ahead]
            self._next = 0
            self._fill()

    def take(self, source: SourceObject) -> bytes | None:
        """The object's bytes as fetched ahead (waiting for a read in flight), or None: not fetched
        ahead, fetched for another version (ETag), or its read failed. Each object is taken once."""
        with self._lock:
            found = self._ahead.get(source.path)
            if found is None or found[0].etag != source.etag:
                return None
            future = found[1]
        try:
            data = future.result()
        except Exception:  # the caller's own read meets the failure, with its own retries
            data = None
        with self._lock:
            if self._ahead.get(source.path, (None, None))[1] is future:
                self._drop(source.path)
                self._fill()
        return data if data is not None and len(data) == source.size else None

    def _drop(self, path: str) -> None:
        source, future = self._ahead.pop(path)
        future.cancel()
        self._ahead_bytes -= source.size

    def close(self) -> None:
        """Stop: nothing more is fetched, what was fetched is released (reads in flight end alone)."""
        with self._lock:
            self._closed = True
            for path in list(self._ahead):
                self._drop(path)
        self._pool.shutdown(wait=False, cancel_futures=True)

    def __enter__(self) -> Prefetcher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
