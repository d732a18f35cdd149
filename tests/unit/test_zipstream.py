"""The on-the-fly stored zip: a valid archive, exact length up front, CRC before data, per-entry MD5."""

from __future__ import annotations

import hashlib
import io
import struct
import zipfile

from xnat_upload.transfer.zipstream import StoredZipBody, ZipEntry, archive_length

CONTENT = {"a.dcm": b"A" * 1000, "dir/b c.dcm": b"bytes of b", "empty.txt": b"", "x/y/z.nii": bytes(range(256)) * 50}


def build(read_size: int = 7) -> tuple[StoredZipBody, bytes]:
    entries = [ZipEntry(name, len(data)) for name, data in CONTENT.items()]
    body = StoredZipBody(entries, lambda e: CONTENT[e.name], workers=2, lookahead=2)
    chunks = []
    while chunk := body.read(read_size):
        chunks.append(chunk)
    return body, b"".join(chunks)


def test_the_archive_is_a_valid_zip_holding_every_entry_at_its_path() -> None:
    _, data = build()
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        assert archive.testzip() is None
        assert {info.filename: archive.read(info) for info in archive.infolist()} == CONTENT
        assert {info.compress_type for info in archive.infolist()} == {zipfile.ZIP_STORED}


def test_the_length_is_exact_before_a_byte_is_read() -> None:
    body, data = build()
    assert len(body) == len(data) == archive_length([ZipEntry(n, len(d)) for n, d in CONTENT.items()])


def test_local_headers_carry_the_crc_so_java_zipinputstream_accepts_them() -> None:
    _, data = build()
    offset = 0
    while data[offset : offset + 4] == b"PK\x03\x04":
        flags, crc = struct.unpack_from("<H", data, offset + 6)[0], struct.unpack_from("<I", data, offset + 14)[0]
        size, name_len, extra_len = struct.unpack_from("<IHH", data, offset + 22)
        assert not flags & 0x08, "no data descriptor"
        name = data[offset + 30 : offset + 30 + name_len].decode()
        assert size == len(CONTENT[name])
        assert crc == (__import__("zlib").crc32(CONTENT[name]) & 0xFFFFFFFF)
        offset += 30 + name_len + extra_len + size


def test_each_entry_md5_is_recorded_as_it_is_sent() -> None:
    body, _ = build(read_size=65536)
    assert {d.name: d.md5 for d in body.digests} == {n: hashlib.md5(d).hexdigest() for n, d in CONTENT.items()}


def test_reading_everything_at_once_gives_the_same_bytes() -> None:
    _, small_reads = build(read_size=3)
    entries = [ZipEntry(name, len(data)) for name, data in CONTENT.items()]
    assert StoredZipBody(entries, lambda e: CONTENT[e.name]).read() == small_reads


def test_fetching_ahead_is_bounded_in_bytes_not_only_in_entries() -> None:
    import threading

    sizes = {f"e{i}": 1000 for i in range(20)}
    in_flight = 0
    peak = 0
    lock = threading.Lock()

    def fetch(entry: ZipEntry) -> bytes:
        nonlocal in_flight, peak
        with lock:
            in_flight += entry.size
            peak = max(peak, in_flight)
        return b"x" * entry.size

    body = StoredZipBody(
        [ZipEntry(n, s) for n, s in sizes.items()], fetch, workers=8, lookahead=16, max_ahead_bytes=3000
    )
    for chunk in body:
        if chunk.startswith(b"x"):
            with lock:
                in_flight -= len(chunk)
    assert peak <= 3000
