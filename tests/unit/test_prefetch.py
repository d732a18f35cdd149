"""Zip entries read ahead (transfer/prefetch.py): the validated bytes or nothing, each once, bounded."""

from __future__ import annotations

import threading
from typing import Any

from botocore.exceptions import ClientError

from xnat_upload.transfer.prefetch import Prefetcher
from xnat_upload.transfer.sources import SourceObject


class _Body:
    def __init__(self, data: bytes) -> None:
        self._data = data

    def read(self) -> bytes:
        return self._data

    def close(self) -> None:
        return None


class FakeS3:
    """Objects by key with their ETag; GETs pinned with IfMatch, as S3 answers them; a gate holds reads."""

    def __init__(self, objects: dict[str, tuple[bytes, str]]) -> None:
        self.objects = objects
        self.gets: list[str] = []
        self.gate = threading.Event()
        self.gate.set()
        self._lock = threading.Lock()

    def get_object(self, Bucket: str, Key: str, IfMatch: str) -> dict[str, Any]:
        with self._lock:
            self.gets.append(Key)
        self.gate.wait(10)
        data, etag = self.objects[Key]
        if etag != IfMatch:
            raise ClientError({"Error": {"Code": "PreconditionFailed"}}, "GetObject")
        return {"Body": _Body(data)}


def sources(count: int, size: int = 4) -> tuple[FakeS3, list[SourceObject]]:
    objects = {f"k/{i}": (bytes([i]) * size, f'"etag-{i}"') for i in range(count)}
    found = [SourceObject(f"p{i}", f"k/{i}", size, f'"etag-{i}"', None) for i in range(count)]
    return FakeS3(objects), found


def test_each_object_is_handed_over_once_with_the_bytes_read_for_its_etag() -> None:
    s3, found = sources(3)
    with Prefetcher(s3, "bucket", found) as ahead:
        assert ahead.take(found[1]) == bytes([1]) * 4
        assert ahead.take(found[1]) is None, "taken once: a second attempt reads it itself"
        changed = SourceObject("p0", "k/0", 4, '"another-etag"', None)
        assert ahead.take(changed) is None, "read for another version of the object: not handed over"


def test_no_more_than_the_bound_is_read_ahead_of_what_was_taken() -> None:
    s3, found = sources(6, size=10)
    taken = 0  # takes begun
    started_when: dict[str, int] = {}  # object -> how many takes had begun when its read started
    get = s3.get_object

    def watched(**kwargs: Any) -> dict[str, Any]:
        started_when[kwargs["Key"]] = taken
        return get(**kwargs)

    s3.get_object = watched  # type: ignore[method-assign]
    with Prefetcher(s3, "bucket", found, max_bytes=20) as ahead:
        for source in found:
            taken += 1
            assert ahead.take(source) == bytes([int(source.key[2:])]) * 10
    for key, seen in started_when.items():
        assert int(key[2:]) < seen + 2, f"{key} was read with {seen} takes begun: more than 20 bytes ahead"


def test_a_failed_read_ahead_is_left_to_the_caller() -> None:
    s3, found = sources(2)
    s3.objects["k/0"] = (b"newer", '"etag-changed"')  # overwritten after validation
    with Prefetcher(s3, "bucket", found) as ahead:
        assert ahead.take(found[0]) is None, "the caller's own pinned read meets the change, with its retries"
        assert ahead.take(found[1]) == bytes([1]) * 4


def test_what_the_listing_settled_is_dropped_and_the_rest_read_in_the_new_order() -> None:
    s3, found = sources(4, size=10)
    with Prefetcher(s3, "bucket", found, max_bytes=20) as ahead:
        ahead.restrict([found[3], found[2]])
        assert ahead.take(found[0]) is None
        assert ahead.take(found[3]) == bytes([3]) * 10
        assert ahead.take(found[2]) == bytes([2]) * 10
        assert "k/1" not in s3.gets[2:], "dropped objects are not read again"


def test_closed_it_reads_nothing_more() -> None:
    s3, found = sources(4, size=10)
    s3.gate.clear()  # the first reads hang until released
    ahead = Prefetcher(s3, "bucket", found, workers=1, max_bytes=40)
    ahead.close()
    s3.gate.set()
    assert ahead.take(found[3]) is None
    assert len(s3.gets) <= 1, "only a read already in flight ends"
