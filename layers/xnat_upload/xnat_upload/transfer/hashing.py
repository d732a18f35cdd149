"""A streaming request body that counts and hashes what it hands to the HTTP client."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from typing import Protocol

from ..exceptions import SourceChangedError


class Readable(Protocol):
    def read(self, size: int = -1) -> bytes: ...


class HashingBody:
    """Exact `len` (so requests sends Content-Length, never chunked) and MD5 of the bytes read.

    The HTTP client pulls fixed-size blocks; memory stays at one block whatever the size.
    A source that ends early or runs long raises instead of sending a wrong file.
    """

    block_size = 256 * 1024

    def __init__(self, source: Readable, size: int, known_md5: str | None = None) -> None:
        """`known_md5`: the S3 ETag is the object's MD5 and `IfMatch` pins those bytes, so hashing
        again would only spend CPU; XNAT's digest is then checked against it after the upload."""
        self._source = source
        self._size = size
        self._known_md5 = known_md5
        self._md5 = None if known_md5 else hashlib.md5(usedforsecurity=False)
        self.bytes_read = 0

    def __len__(self) -> int:
        return self._size

    def read(self, size: int = -1) -> bytes:
        remaining = self._size - self.bytes_read
        if remaining <= 0:
            if self._source.read(1):
                raise SourceChangedError("source is longer than its recorded size")
            return b""
        want = remaining if size is None or size < 0 else min(size, remaining)
        chunk = self._source.read(min(want, self.block_size))
        if not chunk:
            raise SourceChangedError(f"source ended after {self.bytes_read} of {self._size} bytes")
        self.bytes_read += len(chunk)
        if self._md5 is not None:
            self._md5.update(chunk)
        return chunk

    def __iter__(self) -> Iterator[bytes]:
        """Whole blocks for the HTTP client: one `sendall` per block instead of one per 16 KiB."""
        while block := self.read(self.block_size):
            yield block

    def close(self) -> None:
        close = getattr(self._source, "close", None)
        if close is not None:
            close()

    @property
    def md5(self) -> str:
        return self._md5.hexdigest() if self._md5 is not None else str(self._known_md5)

    @property
    def complete(self) -> bool:
        return self.bytes_read == self._size
