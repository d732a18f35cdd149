"""S3 side of a transfer: existence checks up front, then one streamed GET per attempt."""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools.utilities.streaming import S3Object
from botocore.exceptions import BotoCoreError, ClientError

from ..exceptions import SourceChangedError, SourceReadError, TimeBudgetExceededError
from . import s3_deadline
from .s3_deadline import carry_context

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

_PLAIN_MD5_ETAG = re.compile(r'^"?([0-9a-f]{32})"?$')
_TRANSIENT = {"SlowDown", "RequestTimeout", "InternalError", "ServiceUnavailable", "Throttling"}
_NOT_FOUND = {"404", "NoSuchKey", "NotFound"}


@dataclass(frozen=True)
class SourceObject:
    """A requested file as it was when the job validated it."""

    path: str
    key: str
    size: int
    etag: str
    md5: str | None  # known without reading when the ETag is a plain MD5 (single-part, SSE-S3)


LIST_MIN_KEYS = 32  # from this many files, listing the prefix is cheaper than a HEAD per object
HASH_BLOCK_SIZE = 1024 * 1024  # what computing an object's MD5 holds in memory at a time


def find_objects(
    s3: S3Client, bucket: str, keys: dict[str, str], *, head_unreached: bool = True
) -> dict[str, SourceObject | None]:
    """path -> object, or None when it does not exist: a HEAD each for a few, a listing for many.

    A listing (1000 keys a request) turns 500 HEADs into one call. It does not say how an
    object is encrypted, so its ETag is not trusted as an MD5 (the transfer computes it instead).
    The listing stops after a few pages more than the request needs; what it did not reach is
    HEADed, so a huge prefix never costs more than the HEADs would have. With `head_unreached`
    false those paths are left out of the answer instead (not known), so the cost stays at
    `len(keys) / 1000 + 3` listing pages: the intake's quick check.
    """
    if len(keys) < LIST_MIN_KEYS:
        return head_objects(s3, bucket, keys)
    values = list(keys.values())
    prefix = os.path.commonprefix(values)  # noqa: RUF071 - cut back to a "/" on the next line
    prefix = prefix[: prefix.rfind("/") + 1]
    wanted = {key: path for path, key in keys.items()}
    found: dict[str, SourceObject | None] = {}
    max_pages = len(keys) // 1000 + 3
    complete = False
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    for number, page in enumerate(pages, start=1):
        for item in page.get("Contents", []):
            path = wanted.get(item["Key"])
            if path is not None:
                found[path] = SourceObject(path, item["Key"], int(item["Size"]), item["ETag"], None)
        if not page.get("IsTruncated"):
            complete = True
            break
        if number >= max_pages or len(found) == len(keys):
            break
    rest = {path: key for path, key in keys.items() if path not in found}
    if complete:
        found.update(dict.fromkeys(rest))
    elif rest and head_unreached:
        found.update(head_objects(s3, bucket, rest))
    return found


def head_objects(
    s3: S3Client, bucket: str, keys: dict[str, str], max_workers: int = 16
) -> dict[str, SourceObject | None]:
    """HEAD every requested key in parallel: path -> object, or None when it does not exist."""

    def head(item: tuple[str, str]) -> tuple[str, SourceObject | None]:
        path, key = item
        try:
            meta = s3.head_object(Bucket=bucket, Key=key)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in _NOT_FOUND:
                return path, None
            raise
        return path, _source(path, key, meta)

    with ThreadPoolExecutor(max_workers=max(1, min(max_workers, len(keys)))) as pool:
        return dict(pool.map(carry_context(head), keys.items()))


def _source(path: str, key: str, meta: dict[str, Any]) -> SourceObject:
    etag = meta.get("ETag", "")
    match = _PLAIN_MD5_ETAG.fullmatch(etag)
    # With SSE-KMS or multipart uploads the ETag is not the content's MD5.
    plain = match is not None and meta.get("ServerSideEncryption") in (None, "AES256")
    return SourceObject(path, key, int(meta.get("ContentLength", 0)), etag, match.group(1) if plain else None)


@contextmanager
def _reading(source: SourceObject) -> Iterator[None]:
    """S3 failures while reading a validated object: a changed or vanished object is final
    (`SourceChangedError`, never other bytes); a passing failure is retried (`SourceReadError`)."""
    try:
        with s3_deadline.reading_images():
            yield
    except Exception as exc:
        if s3_deadline.expired():  # the read was cut: the file is not finished, nothing is wrong with it
            raise TimeBudgetExceededError(
                f"reading the S3 object for {source.path!r} was cut at the deadline: S3 had not delivered it in time"
            ) from exc
        if not isinstance(exc, (ClientError, BotoCoreError)):
            raise
        _raise_read_error(source, exc)


def _raise_read_error(source: SourceObject, exc: ClientError | BotoCoreError) -> None:
    if isinstance(exc, ClientError):
        code = exc.response.get("Error", {}).get("Code", "")
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
        if status >= 500 or code in _TRANSIENT:
            raise SourceReadError(f"reading S3 object for {source.path!r} failed ({code or status})") from exc
        raise SourceChangedError(f"S3 object for {source.path!r} changed or vanished during the job ({code})") from exc
    raise SourceReadError(f"reading S3 object for {source.path!r} failed: {type(exc).__name__}") from exc


def fetch_whole(s3: S3Client, bucket: str, source: SourceObject) -> bytes:
    """A small object in one plain GET pinned to the validated ETag (zip entries are held whole)."""
    with _reading(source):
        body = s3.get_object(Bucket=bucket, Key=source.key, IfMatch=source.etag)["Body"]
        try:
            return body.read()
        finally:
            body.close()


class SourceStream:
    """The object's bytes, fetched lazily by one ranged GET pinned to the validated ETag.

    Built on Powertools' streaming `S3Object`; a changed or deleted object fails the read with
    `SourceChangedError` instead of sending other bytes than those validated.
    """

    def __init__(self, s3: S3Client, bucket: str, source: SourceObject) -> None:
        self._source = source
        self._object = S3Object(bucket=bucket, key=source.key, boto3_client=s3, IfMatch=source.etag)

    def read(self, size: int = -1) -> bytes:
        with _reading(self._source):
            return self._object.read(size)

    def close(self) -> None:
        self._object.close()


def object_md5(
    s3: S3Client, bucket: str, source: SourceObject, keep_going: Callable[[], bool] = lambda: True
) -> str | None:
    """The object's MD5, from one streamed GET pinned to the validated ETag (one block in memory).

    For objects whose ETag is not their MD5 (multipart uploads, SSE-KMS). None when `keep_going`
    turned false before the end (out of time); a changed or vanished object raises
    `SourceChangedError`, a passing S3 failure `SourceReadError`.
    """
    stream = SourceStream(s3, bucket, source)
    digest = hashlib.md5(usedforsecurity=False)
    size = 0
    try:
        while keep_going():
            block = stream.read(HASH_BLOCK_SIZE)
            if not block:
                break
            digest.update(block)
            size += len(block)
        else:
            return None
    finally:
        stream.close()
    if size != source.size:
        raise SourceChangedError(f"S3 object for {source.path!r} has {size} bytes, {source.size} were validated")
    return digest.hexdigest()
