"""Fetch from S3 ahead of the HTTP client, so S3 reads overlap XNAT writes on the per-file path.

A producer thread fills a small bounded queue with blocks; memory stays at `depth x block_size`
whatever the object size. Errors cross to the reader; `close()` stops the producer promptly
(a retry or a failure abandons the stream).

Example::

    body = ReadAhead(SourceStream(s3, bucket, source), size=source.size)
    while block := body.read(1 << 20): ...
"""

from __future__ import annotations

import queue
import threading
from typing import Protocol

from .s3_deadline import carry_context

BLOCK_SIZE = 256 * 1024
DEPTH = 4
_END = object()


class _Source(Protocol):
    def read(self, size: int = -1) -> bytes: ...
    def close(self) -> None: ...


class ReadAhead:
    def __init__(self, source: _Source, block_size: int = BLOCK_SIZE, depth: int = DEPTH) -> None:
        self._source = source
        self._block_size = block_size
        self._queue: queue.Queue[object] = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._current = memoryview(b"")
        self._offset = 0
        self._finished = False
        # Under the caller's S3 deadline: a trickled read here is cut when the transfer's time is up.
        self._thread = threading.Thread(target=carry_context(self._produce), daemon=True, name="s3-read-ahead")
        self._thread.start()

    def _produce(self) -> None:
        try:
            while not self._stop.is_set():
                block = self._source.read(self._block_size)
                self._put(block if block else _END)
                if not block:
                    return
        except BaseException as exc:  # handed to the reader, raised there
            self._put(exc)
        finally:
            self._source.close()

    def _put(self, item: object) -> None:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    def read(self, size: int = -1) -> bytes:
        """Up to `size` bytes (a whole block when `size` is -1); b"" at the end."""
        while self._offset >= len(self._current):
            if self._finished:
                return b""
            item = self._queue.get()
            if item is _END:
                self._finished = True
                return b""
            if isinstance(item, BaseException):
                self._finished = True
                raise item
            self._current, self._offset = memoryview(item), 0  # type: ignore[arg-type]
        end = len(self._current) if size is None or size < 0 else self._offset + size
        piece = self._current[self._offset : end]
        self._offset += len(piece)
        return bytes(piece)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
