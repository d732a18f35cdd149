"""Many S3 objects into moto's server, in parallel, each with bytes of its own (for `bench.queue`).

Every object starts with its own key (a mix-up between two files changes an MD5) followed by one
shared random block, so 100,000 of them cost no random generation worth measuring. moto answers
a few hundred PUTs a second on two cores: 100,000 objects take minutes, so the work is spread
over threads and progress is printed.

Example::

    md5 = seed(s3, "bucket", {"net/upload/a.dcm": 65536, ...})   # key -> MD5 (the ETag of a single PUT)
"""

from __future__ import annotations

import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

THREADS = 16
BLOCK = os.urandom(1024 * 1024)


def content(key: str, size: int) -> bytes:
    head = f"{key}\n".encode()
    if size <= len(head):
        return head[:size]
    tail = size - len(head)
    return head + (BLOCK * (tail // len(BLOCK) + 1))[:tail]


def seed(s3: Any, bucket: str, objects: dict[str, int], label: str = "objects") -> dict[str, str]:
    """Put every `key -> size`; returns key -> MD5 hex. Prints progress for big batches."""

    def put(item: tuple[str, int]) -> tuple[str, str]:
        key, size = item
        etag = s3.put_object(Bucket=bucket, Key=key, Body=content(key, size))["ETag"]
        return key, etag.strip('"')

    started = time.monotonic()
    done: dict[str, str] = {}
    step = max(1000, len(objects) // 10)
    with ThreadPoolExecutor(max_workers=THREADS) as pool:
        for key, md5 in pool.map(put, objects.items()):
            done[key] = md5
            if len(objects) >= 10_000 and len(done) % step == 0:
                rate = len(done) / (time.monotonic() - started)
                print(f"    {label}: {len(done)}/{len(objects)} ({rate:.0f}/s)", file=sys.stderr, flush=True)
    return done
