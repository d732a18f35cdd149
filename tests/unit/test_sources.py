"""Finding the requested objects: a HEAD each for a few, one listing for many, never more requests."""

from __future__ import annotations

from collections.abc import Iterator

import boto3
import pytest
from moto import mock_aws

from xnat_upload.transfer.hashing import HashingBody
from xnat_upload.transfer.sources import LIST_MIN_KEYS, find_objects


class Counting:
    """Wraps the client to count the calls find_objects makes."""

    def __init__(self, s3) -> None:
        self._s3 = s3
        self.calls: list[str] = []

    def head_object(self, **kwargs):
        self.calls.append("head")
        return self._s3.head_object(**kwargs)

    def get_paginator(self, name: str):
        self.calls.append(name)
        return self._s3.get_paginator(name)


@pytest.fixture
def s3() -> Iterator:
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket="data-bucket")
        yield client


def keys_for(paths: list[str]) -> dict[str, str]:
    return {p: f"net-1/upload/{p}" for p in paths}


def test_a_few_objects_are_headed_and_their_etag_md5_is_trusted(s3) -> None:
    s3.put_object(Bucket="data-bucket", Key="net-1/upload/a.nii", Body=b"abc")
    counting = Counting(s3)
    found = find_objects(counting, "data-bucket", keys_for(["a.nii", "missing.nii"]))

    assert counting.calls == ["head", "head"]
    assert found["a.nii"].size == 3
    assert found["a.nii"].md5 == "900150983cd24fb0d6963f7d28e17f72"
    assert found["missing.nii"] is None


def test_many_objects_are_found_with_one_listing(s3) -> None:
    paths = [f"slices/{i:04d}.dcm" for i in range(LIST_MIN_KEYS + 10)]
    for path in paths[:-1]:
        s3.put_object(Bucket="data-bucket", Key=f"net-1/upload/{path}", Body=path.encode())
    s3.put_object(Bucket="data-bucket", Key="net-1/upload/slices-other/x.dcm", Body=b"not requested")
    counting = Counting(s3)

    found = find_objects(counting, "data-bucket", keys_for(paths))

    assert counting.calls == ["list_objects_v2"]
    assert found[paths[-1]] is None
    assert all(found[p].size == len(p) for p in paths[:-1])
    assert all(found[p].md5 is None for p in paths[:-1]), "a listing does not say the ETag is an MD5"


def test_a_body_with_a_known_md5_does_not_hash_again() -> None:
    import io

    body = HashingBody(io.BytesIO(b"abc"), 3, known_md5="900150983cd24fb0d6963f7d28e17f72")
    assert b"".join(body) == b"abc"
    assert body.complete
    assert body.md5 == "900150983cd24fb0d6963f7d28e17f72"


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        ({"Error": {"Code": "PreconditionFailed"}, "ResponseMetadata": {"HTTPStatusCode": 412}}, "SourceChangedError"),
        ({"Error": {"Code": "NoSuchKey"}, "ResponseMetadata": {"HTTPStatusCode": 404}}, "SourceChangedError"),
        ({"Error": {"Code": "SlowDown"}, "ResponseMetadata": {"HTTPStatusCode": 503}}, "SourceReadError"),
        ({"Error": {"Code": "InternalError"}, "ResponseMetadata": {"HTTPStatusCode": 500}}, "SourceReadError"),
    ],
)
def test_a_changed_object_is_final_but_a_passing_s3_failure_is_retryable(error: dict, expected: str) -> None:
    from botocore.exceptions import ClientError

    from xnat_upload.transfer.sources import SourceObject, fetch_whole

    class Failing:
        def get_object(self, **kwargs):
            raise ClientError(error, "GetObject")

    with pytest.raises(Exception) as caught:
        fetch_whole(Failing(), "data-bucket", SourceObject("a.nii", "net-1/upload/a.nii", 1, '"e"', None))
    assert type(caught.value).__name__ == expected
    assert caught.value.retryable if expected == "SourceReadError" else True


def test_a_dropped_s3_stream_is_retryable() -> None:
    from botocore.exceptions import ReadTimeoutError

    from xnat_upload.exceptions import SourceReadError
    from xnat_upload.transfer.sources import SourceObject, fetch_whole

    class Dropping:
        def get_object(self, **kwargs):
            raise ReadTimeoutError(endpoint_url="http://s3")

    with pytest.raises(SourceReadError):
        fetch_whole(Dropping(), "data-bucket", SourceObject("a.nii", "net-1/upload/a.nii", 1, '"e"', None))
