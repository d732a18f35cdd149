"""Properties that hold for any input: path confinement, manifest handling, size limits.

Hypothesis generates the inputs; S3 is moto's in-process mock and XNAT a small in-memory fake,
so nothing here touches the network.
"""

from __future__ import annotations

import io
import json
import posixpath
import re
import string
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import boto3
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from moto import mock_aws

from devserver.xnat_emulator import _decode_file_path
from xnat_upload.config import Settings
from xnat_upload.exceptions import KeyOutsidePrefixError, ManifestError, ProjectNotFoundError
from xnat_upload.job.intake import accept_manifest
from xnat_upload.job.queue import JobMessage
from xnat_upload.job.worker import Continued, Finished, work_on_job
from xnat_upload.manifest import (
    JobManifest,
    check_identifier,
    check_relative_path,
    confined_key,
    find_collisions,
    requested_paths,
)
from xnat_upload.manifest.paths import MAX_PATH_LENGTH, RELATIVE_PATH_PATTERN
from xnat_upload.result import FileStatus, JobStatus
from xnat_upload.xnat import Experiment, RemoteFile, urls

PROPERTY = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
BUCKET = "property-bucket"

# -- (a) confinement of relative paths -------------------------------------------------------------

nasty_chars = st.characters(codec="utf-8") | st.sampled_from(list("/.\\%\x00\n\r\t\x7f\u202e\u2028\ufeff?#~+@ "))
segments = st.sampled_from(["", ".", "..", "...", "%2e%2e", "%2F", "a", "b.nii", " a", "a ", "~", "A", "\\.."])
relative_paths = st.one_of(
    st.text(nasty_chars, max_size=40),
    st.lists(segments | st.text(nasty_chars, max_size=8), min_size=1, max_size=6).map("/".join),
)
net_ids = st.one_of(
    st.text(max_size=12),
    st.text(string.ascii_letters + string.digits + "._~-", min_size=1, max_size=12),
    st.sampled_from([".", "..", "net-1", "net-1/upload/..", "a/b", ""]),
)


@PROPERTY
@given(net_id=net_ids, path=relative_paths)
def test_a_confined_key_never_leaves_the_nets_upload_prefix(net_id: str, path: str) -> None:
    try:
        check_identifier(net_id, "net_id")
        prefix = f"{net_id}/upload/"
        key = confined_key(prefix, path)
    except KeyOutsidePrefixError:
        return
    assert key.startswith(f"{net_id}/upload/")
    rest = key[len(prefix) :]
    assert rest == path, "a path is used exactly as written"
    assert all(segment not in ("", ".", "..") for segment in rest.split("/"))
    assert posixpath.normpath(key) == key
    assert "\\" not in key and "%" not in key
    assert all(ch.isprintable() for ch in key)


@PROPERTY
@given(path=relative_paths)
def test_an_accepted_path_is_stored_by_xnat_under_exactly_that_name(path: str) -> None:
    """The URL segment built for a path decodes (by XNAT's %20/%2B rule) back to the same path."""
    try:
        confined_key("net-1/upload/", path)
    except KeyOutsidePrefixError:
        return
    encoded = urls.file_path(path)
    assert "?" not in encoded and "#" not in encoded
    assert _decode_file_path(encoded) == path


tree_paths = st.lists(
    st.lists(st.sampled_from(["a", "A", "b", "B", "c.nii"]), min_size=1, max_size=3).map("/".join), max_size=8
)


@PROPERTY
@given(paths=tree_paths)
def test_the_paths_a_manifest_keeps_fit_on_one_case_insensitive_filesystem(paths: list[str]) -> None:
    """No kept path is another's name (case folded) or a folder of another; each refusal names its clash."""
    collisions = find_collisions(paths)
    kept = {p.casefold() for p in paths if p not in collisions}
    assert len(kept) == len({p for p in paths if p not in collisions})
    for path in kept:
        assert not any(other.startswith(path + "/") for other in kept), (path, kept)
    for path, other in collisions.items():
        last = max(i for i, p in enumerate(paths) if p == path)
        assert paths.index(other) < last, "a path is refused for a clash with an earlier one"
        a, b = path.casefold(), other.casefold()
        assert a == b or a.startswith(b + "/") or b.startswith(a + "/")


@settings(max_examples=200, deadline=None)
@given(net_id=net_ids)
def test_the_manifest_schema_and_check_identifier_agree_on_identifiers(net_id: str) -> None:
    try:
        check_identifier(net_id, "net_id")
        accepted_by_rule = True
    except KeyOutsidePrefixError:
        accepted_by_rule = False
    try:
        JobManifest.from_data({**VALID, "net_id": net_id})
        accepted_by_schema = True
    except ManifestError:
        accepted_by_schema = False
    assert accepted_by_rule == accepted_by_schema


path_alphabet = st.sampled_from(list("aZ09._~+@=,() -/\\%\x00\n\u00e9\u2024"))
long_segments = st.sampled_from(["a" * 254, "a" * 255, "a" * 256, "." * 255, "a" * 253 + " a", " " + "a" * 254])
documented_paths = st.one_of(
    relative_paths,
    st.text(path_alphabet, max_size=30),
    st.lists(long_segments | segments, min_size=1, max_size=3).map("/".join),
)


@PROPERTY
@given(path=documented_paths)
def test_the_documented_path_pattern_accepts_exactly_the_paths_the_intake_accepts(path: str) -> None:
    """The OpenAPI document's pattern and maxLength are `check_relative_path`, so a schema-valid path is
    never refused and a refused one never schema-valid."""
    try:
        check_relative_path(path)
        accepted = True
    except KeyOutsidePrefixError:
        accepted = False
    documented = re.fullmatch(RELATIVE_PATH_PATTERN, path) is not None and len(path) <= MAX_PATH_LENGTH
    assert documented == accepted


# -- (b) any manifest body gets a result, never a crash ---------------------------------------------

VALID: dict[str, Any] = {
    "central_hub_project_id": "CHP-001",
    "accession_id": "ACC0001",
    "net_id": "net-1",
    "scan_id": "1",
    "resource_id": "NIFTI",
    "files_relative_paths_to_upload": ["a.nii", "b/c.nii"],
    "exist_ok": False,
}
OBJECTS = {"a.nii": b"a" * 300, "b/c.nii": b"c" * 1000, "empty.nii": b"", "d e+f.nii": b"def"}

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=12,
)
manifest_paths = st.lists(
    st.sampled_from([*OBJECTS, "missing.nii", "../x.nii", "A.nii", "a.nii"]) | relative_paths, max_size=5
)


@st.composite
def mutated_manifests(draw: st.DrawFn) -> Any:
    """A valid manifest with some fields deleted, replaced by any JSON value, or added."""
    document = dict(VALID)
    for _ in range(draw(st.integers(0, 3))):
        action = draw(st.sampled_from(["delete", "replace", "add", "paths", "flip"]))
        field = draw(st.sampled_from(sorted(VALID)))
        if action == "delete":
            document.pop(field, None)
        elif action == "replace":
            document[field] = draw(json_values)
        elif action == "add":
            document[draw(st.text(max_size=10))] = draw(json_values)
        elif action == "paths":
            document["files_relative_paths_to_upload"] = draw(manifest_paths)
        else:
            document["exist_ok"] = not document.get("exist_ok")
    return document


# Arrays or objects nested thousands deep, alone or as a field's value: json.loads raises RecursionError.
nested_bodies = st.one_of(
    st.integers(1, 50_000).map(lambda n: b"[" * n + b"]" * n),
    st.integers(1, 50_000).map(lambda n: b'{"files_relative_paths_to_upload": ' + b"[" * n + b"]" * n + b"}"),
    st.integers(1, 50_000).map(lambda n: b'{"a": ' * n + b"1" + b"}" * n),
)

valid_manifests = st.builds(
    lambda paths, exist_ok: {**VALID, "files_relative_paths_to_upload": paths, "exist_ok": exist_ok},
    st.lists(st.sampled_from([*OBJECTS, "missing.nii", "A.NII"]), min_size=1, max_size=4),
    st.booleans(),
)
manifest_bodies = st.one_of(
    valid_manifests.map(lambda d: json.dumps(d).encode()),
    mutated_manifests().map(lambda d: json.dumps(d).encode()),
    json_values.map(lambda d: json.dumps(d).encode()),
    st.binary(max_size=200),
    st.text(max_size=200).map(str.encode),
    mutated_manifests().map(lambda d: json.dumps(json.dumps(d)).encode()),  # a manifest inside a JSON string
    nested_bodies,
)


# Files XNAT already holds before the job: the same bytes as in S3, or other bytes.
already_in_xnat = st.dictionaries(
    st.sampled_from(sorted(OBJECTS)), st.sampled_from([b"other bytes", None]), max_size=3
).map(lambda d: {p: OBJECTS[p] if v is None else v for p, v in d.items()})


class FakeXnat:
    """The XnatClient calls the job makes, kept in memory; counts every call."""

    def __init__(self, store: dict[str, bytes]) -> None:
        self.store = store
        self.calls = 0
        self.requests_made = 0
        self.retries = 0

    def __enter__(self) -> FakeXnat:
        self.calls += 1
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def find_project_by_secondary_id(self, secondary_id: str) -> str:
        self.calls += 1
        if secondary_id != "CHP-001":
            raise ProjectNotFoundError(f"no XNAT project has secondary ID {secondary_id!r}")
        return "PRJ001"

    def get_experiment(self, project_id: str, label: str) -> Experiment:
        self.calls += 1
        return Experiment(project_id, "XNAT_S00001", "XNAT_E00001", label)

    def create_xnat_scan(self, *args: Any) -> None:
        self.calls += 1

    def create_xnat_resource(self, *args: Any) -> bool:
        self.calls += 1
        return True

    def list_resource_files(self, *args: Any) -> dict[str, RemoteFile]:
        import hashlib

        self.calls += 1
        return {p: RemoteFile(p, len(d), hashlib.md5(d).hexdigest(), p) for p, d in self.store.items()}

    def file_url(self, experiment: Experiment, scan: str, resource: str, path: str) -> str:
        return (
            f"https://xnat.test/data/experiments/{experiment.experiment_id}/scans/{scan}/files/{urls.file_path(path)}"
        )

    def upload_file_to_xnat(self, experiment, scan, resource, path, open_body, *, extract=False, **_: Any) -> str:
        self.calls += 1
        body = open_body()
        data = b"".join(iter(lambda: body.read(65536), b""))
        assert len(data) == len(body)
        if extract:
            with zipfile.ZipFile(io.BytesIO(data)) as archive:
                for name in archive.namelist():
                    self.store[name] = archive.read(name)
        else:
            self.store[path] = data
        return self.file_url(experiment, scan, resource, path)


@contextmanager
def mocked_bucket() -> Iterator[Any]:
    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket=BUCKET)
        s3.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
        for path, data in OBJECTS.items():
            s3.put_object(Bucket=BUCKET, Key=f"net-1/upload/{path}", Body=data)
        yield s3


def local_settings(**overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "xnat_url": "https://xnat.test",
        "data_bucket": BUCKET,
        "xnat_user": "svc",
        "xnat_password": "pw",
        "progress_interval_seconds": 0,
        "max_retries": 0,
        **overrides,
    }
    return Settings(**values)


class CapturedQueue:
    """The job queue, as far as the intake and the worker use it: messages kept in order."""

    def __init__(self) -> None:
        self.sent: list[JobMessage] = []

    def send(self, message: JobMessage, group_id: str) -> str:
        self.sent.append(message)
        return str(len(self.sent))


def run_body(s3: Any, body: bytes, config: Settings, xnat: FakeXnat) -> dict[str, Any]:
    """The intake, then the worker for every message it and the worker itself queue."""
    s3.put_object(Bucket=BUCKET, Key="manifests/job.json", Body=body)
    state = ["results/job.json", "results/.progress/job.json", "results/.checkpoints/job.json.gz"]
    s3.delete_objects(Bucket=BUCKET, Delete={"Objects": [{"Key": key} for key in state]})
    queue = CapturedQueue()
    intake = accept_manifest("manifests/job.json", version_id=None, settings=config, s3=s3, queue=queue)
    assert (intake.status == "queued") == bool(queue.sent)
    while queue.sent:
        outcome = work_on_job(queue.sent.pop(0), settings=config, s3=s3, queue=queue, connect=lambda *_: xnat)
        assert isinstance(outcome, Finished | Continued), outcome
    return json.loads(s3.get_object(Bucket=BUCKET, Key="results/job.json")["Body"].read())


def decoded(body: bytes) -> Any:
    try:
        return json.loads(body)
    except (ValueError, RecursionError):
        return None


def test_any_manifest_body_gets_a_result_that_says_what_happened() -> None:
    config = local_settings(upload_mode="auto")
    with mocked_bucket() as s3:

        @settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
        @given(body=manifest_bodies, in_xnat=already_in_xnat)
        def check(body: bytes, in_xnat: dict[str, bytes]) -> None:
            xnat = FakeXnat(dict(in_xnat))
            result = run_body(s3, body, config, xnat)

            assert result["job_id"] == "job"
            assert result["status"] in {s.value for s in JobStatus}
            statuses = {s.value for s in FileStatus}
            assert all(entry["status"] in statuses for entry in result["files"])
            if "error" in result:
                assert set(result["error"]) == {"code", "message"} and result["error"]["message"]
            else:
                assert result["files"], "without a job-level error, every file has a status"
            for entry in result["files"]:
                if entry["status"] not in ("uploaded", "already_exists"):
                    assert entry.get("error") or "error" in result, entry
            if "error" not in result or result["error"]["code"] not in ("project_not_found",):
                data = decoded(body)
                if isinstance(data, dict) and result["files"]:
                    assert [e["path"] for e in result["files"]] == requested_paths(data)
            for entry in result["files"]:
                if entry["status"] == "uploaded" or entry.get("identical"):
                    assert xnat.store[entry["path"]] == OBJECTS[entry["path"]]
                elif entry["status"] == "already_exists":
                    assert xnat.store[entry["path"]] == in_xnat[entry["path"]], "exist_ok=false keeps XNAT's copy"
            if result["status"] == "succeeded":
                assert "error" not in result

        check()


def test_a_manifest_refused_for_any_reason_never_touches_xnat() -> None:
    config = local_settings()
    with mocked_bucket() as s3:

        @settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
        @given(body=manifest_bodies)
        def check(body: bytes) -> None:
            xnat = FakeXnat({})
            result = run_body(s3, body, config, xnat)
            refused = {"invalid_manifest", "key_outside_prefix", "path_collision", "object_not_found"}
            if result.get("error", {}).get("code") in refused:
                assert xnat.calls == 0
                assert result["status"] == "failed"
                assert not any(e["status"] in ("uploaded", "already_exists") for e in result["files"])

        check()


# -- (c) oversized manifests are refused before any work ----------------------------------------------


def test_a_manifest_listing_more_files_than_allowed_is_refused_clearly() -> None:
    with mocked_bucket() as s3:

        @settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
        @given(limit=st.integers(1, 40), extra=st.integers(1, 30))
        def check(limit: int, extra: int) -> None:
            paths = [f"f{i}.nii" for i in range(limit + extra)]
            xnat = FakeXnat({})
            body = json.dumps({**VALID, "files_relative_paths_to_upload": paths}).encode()
            result = run_body(s3, body, local_settings(max_manifest_files=limit), xnat)

            assert result["status"] == "failed"
            assert result["error"]["code"] == "invalid_manifest"
            assert f"more than {limit} files" in result["error"]["message"]
            assert xnat.calls == 0
            # Refused whole, and too many to list: the result says it lists none rather than some.
            assert result["files"] == []
            assert f"the result lists none of its {len(paths)} entries" in result["error"]["message"]

        check()


def test_a_manifest_larger_than_allowed_is_refused_clearly() -> None:
    compact = json.dumps(VALID).encode()
    with mocked_bucket() as s3:

        @settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
        @given(limit=st.integers(50, 4000), padding=st.integers(1, 5000))
        def check(limit: int, padding: int) -> None:
            body = compact + b" " * max(0, limit - len(compact) + padding)  # still valid JSON, just too big
            assert len(body) > limit
            xnat = FakeXnat({})
            result = run_body(s3, body, local_settings(max_manifest_bytes=limit), xnat)

            assert result["status"] == "failed"
            assert result["error"] == {"code": "invalid_manifest", "message": f"manifest is larger than {limit} bytes"}
            assert xnat.calls == 0

        check()


def test_a_manifest_just_within_the_limits_is_accepted() -> None:
    body = json.dumps(VALID).encode()
    with mocked_bucket() as s3:
        xnat = FakeXnat({})
        result = run_body(s3, body, local_settings(max_manifest_bytes=len(body), max_manifest_files=2), xnat)
    assert result["status"] == "succeeded", result


def test_the_setting_is_the_only_limit_on_the_number_of_files() -> None:
    paths = [f"f{i}.nii" for i in range(10_001)]
    manifest = JobManifest.from_data({**VALID, "files_relative_paths_to_upload": paths}, max_files=20_000)
    assert len(manifest.files_relative_paths_to_upload) == 10_001
    with pytest.raises(ManifestError, match="more than 10000 files"):
        JobManifest.from_data({**VALID, "files_relative_paths_to_upload": paths}, max_files=10_000)


def test_a_manifest_double_encoded_as_a_json_string_is_refused() -> None:
    with pytest.raises(ManifestError, match="JSON object"):
        JobManifest.from_data(json.dumps(VALID))
