"""A stored (uncompressed) zip built on the fly, with its exact length known before the first byte.

XNAT extracts uploaded archives with `java.util.zip.ZipInputStream`, which refuses STORED
entries that defer their CRC to a data descriptor. So each entry's CRC must be in its local
header, before its data: entries are small (bounded by `ZIP_ENTRY_MAX_BYTES`) and fetched whole,
a few ahead, by a thread pool while earlier entries are being sent. Memory stays under
`max_ahead_bytes` plus one entry, never the archive.
"""

from __future__ import annotations

import hashlib
import struct
import zlib
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

from .s3_deadline import carry_context

_LOCAL = struct.Struct("<IHHHHHIIIHH")
_CENTRAL = struct.Struct("<IHHHHHHIIIHHHHHII")
_END = struct.Struct("<IHHHHIIH")
_UTF8_FLAG = 0x0800
_DOS_DATE = (2026 - 1980) << 9 | 1 << 5 | 1  # fixed timestamp: archives are reproducible
MAX_ENTRIES = 65_535
MAX_ARCHIVE_BYTES = 0xFFFF_FFFF


@dataclass(frozen=True)
class ZipEntry:
    name: str
    size: int


@dataclass
class EntryDigest:
    name: str
    size: int
    md5: str


def archive_length(entries: Sequence[ZipEntry]) -> int:
    """Exact byte length of the archive, so it can be sent with a Content-Length."""
    total = _END.size
    for entry in entries:
        name = len(entry.name.encode())
        total += _LOCAL.size + name + entry.size + _CENTRAL.size + name
    return total


class StoredZipBody:
    """A file-like request body: `read` hands out the archive block by block, `len` is exact.

    `fetch(entry)` returns the entry's bytes; it runs on `workers` threads, `lookahead` ahead.
    `digests` holds each entry's MD5 once it has been sent, for checking XNAT's listing.
    """

    def __init__(
        self,
        entries: Sequence[ZipEntry],
        fetch: Callable[[ZipEntry], bytes],
        *,
        workers: int = 4,
        lookahead: int = 8,
        max_ahead_bytes: int = 64 * 1024 * 1024,
    ) -> None:
        if len(entries) > MAX_ENTRIES:
            raise ValueError(f"a batch holds at most {MAX_ENTRIES} entries")
        self._entries = list(entries)
        self._length = archive_length(self._entries)
        if self._length > MAX_ARCHIVE_BYTES:
            raise ValueError("a batch must stay under 4 GiB (no ZIP64)")
        self._fetch = fetch
        self._workers = workers
        self._lookahead = max(1, lookahead)
        self._max_ahead_bytes = max_ahead_bytes
        self._chunks = self._generate()
        self._current = memoryview(b"")
        self._offset = 0
        self.digests: list[EntryDigest] = []

    def __len__(self) -> int:
        return self._length

    def read(self, size: int = -1) -> bytes:
        if size is None or size < 0:
            size = self._length
        parts: list[bytes] = []
        wanted = size
        while wanted > 0:
            if self._offset >= len(self._current):
                chunk = next(self._chunks, None)
                if chunk is None:
                    break
                self._current, self._offset = memoryview(chunk), 0
                continue
            piece = self._current[self._offset : self._offset + wanted]
            self._offset += len(piece)
            wanted -= len(piece)
            parts.append(bytes(piece))
        return b"".join(parts)

    def close(self) -> None:
        """Stop fetching ahead (an abandoned attempt leaves its generator and thread pool open)."""
        self._chunks.close()

    def __iter__(self) -> Iterator[bytes]:
        """The archive in its natural pieces (headers, whole entries): one `sendall` each."""
        if self._offset < len(self._current):
            yield bytes(self._current[self._offset :])
            self._current, self._offset = memoryview(b""), 0
        yield from self._chunks

    def _fetch_and_digest(self, entry: ZipEntry) -> tuple[bytes, int, str]:
        """On a worker thread: the bytes, their CRC-32 (for the local header) and MD5 (to verify)."""
        data = self._fetch(entry)
        if len(data) != entry.size:
            raise ValueError(f"{entry.name!r} has {len(data)} bytes, expected {entry.size}")
        return data, zlib.crc32(data), hashlib.md5(data, usedforsecurity=False).hexdigest()

    def _generate(self) -> Iterator[bytes]:
        central: list[bytes] = []
        offset = 0
        fetch_and_digest = carry_context(self._fetch_and_digest)  # under the caller's S3 deadline
        with ThreadPoolExecutor(max_workers=self._workers) as pool:
            futures: list[Future[tuple[bytes, int, str]]] = []
            submitted = 0
            ahead_bytes = 0  # fetched or being fetched, not yet sent: what bounds memory
            for index, entry in enumerate(self._entries):
                while (
                    submitted < len(self._entries)
                    and submitted < index + self._lookahead
                    and (submitted == index or ahead_bytes + self._entries[submitted].size <= self._max_ahead_bytes)
                ):
                    futures.append(pool.submit(fetch_and_digest, self._entries[submitted]))
                    ahead_bytes += self._entries[submitted].size
                    submitted += 1
                data, crc, md5 = futures[index].result()
                ahead_bytes -= entry.size
                futures[index] = None  # type: ignore[call-overload]  # release the bytes once sent
                name = entry.name.encode()
                yield _LOCAL.pack(
                    0x04034B50, 20, _UTF8_FLAG, 0, 0, _DOS_DATE, crc, entry.size, entry.size, len(name), 0
                )
                yield name
                yield data
                self.digests.append(EntryDigest(entry.name, entry.size, md5))
                central.append(
                    _CENTRAL.pack(
                        0x02014B50,
                        20,
                        20,
                        _UTF8_FLAG,
                        0,
                        0,
                        _DOS_DATE,
                        crc,
                        entry.size,
                        entry.size,
                        len(name),
                        0,
                        0,
                        0,
                        0,
                        0o100644 << 16,
                        offset,
                    )
                    + name
                )
                offset += _LOCAL.size + len(name) + entry.size
        directory = b"".join(central)
        yield directory
        yield _END.pack(0x06054B50, 0, 0, len(central), len(central), len(directory), offset, 0)
