"""The job manifest: the seed's fields, strictly validated, and paths confined to the net's prefix."""

from __future__ import annotations

import json

import pytest

from xnat_upload.exceptions import KeyOutsidePrefixError, ManifestError
from xnat_upload.manifest import JobManifest, check_relative_path, confined_key, find_collisions

VALID = {
    "central_hub_project_id": "CHP-001",
    "accession_id": "ACC0001",
    "net_id": "net-1",
    "scan_id": "1",
    "resource_id": "NIFTI",
    "files_relative_paths_to_upload": ["seg/ct_seg.nii.gz", "report.json"],
    "exist_ok": False,
}


def test_the_architecture_sample_manifest_is_valid() -> None:
    manifest = JobManifest.from_json(json.dumps(VALID), max_bytes=10_000)
    assert manifest.files_relative_paths_to_upload == ["seg/ct_seg.nii.gz", "report.json"]
    assert manifest.exist_ok is False


def test_exist_ok_defaults_to_false() -> None:
    data = {k: v for k, v in VALID.items() if k != "exist_ok"}
    assert JobManifest.from_data(data).exist_ok is False


@pytest.mark.parametrize("field", [k for k in VALID if k != "exist_ok"])
def test_every_required_field_is_named_when_missing(field: str) -> None:
    data = {k: v for k, v in VALID.items() if k != field}
    with pytest.raises(ManifestError, match=field):
        JobManifest.from_data(data)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("files_relative_paths_to_upload", []),
        ("files_relative_paths_to_upload", "report.json"),
        ("exist_ok", "yes"),
        ("exist_ok", 1),
        ("accession_id", ""),
        ("accession_id", "../x"),
        ("scan_id", ".."),
        ("resource_id", "."),
        ("net_id", "net/1"),
        ("scan_xsi_type", "xnat:imageScanData"),
        ("scan_xsi_type", "../../x"),
    ],
)
def test_bad_values_are_refused(field: str, value: object) -> None:
    with pytest.raises(ManifestError, match=field):
        JobManifest.from_data({**VALID, field: value})


def test_unknown_fields_are_refused() -> None:
    with pytest.raises(ManifestError, match="surprise"):
        JobManifest.from_data({**VALID, "surprise": 1})


def test_too_many_files_is_refused_before_any_work() -> None:
    with pytest.raises(ManifestError, match="more than 3 files"):
        JobManifest.from_data({**VALID, "files_relative_paths_to_upload": [f"f{i}" for i in range(4)]}, max_files=3)


def test_an_oversized_manifest_is_refused_by_bytes() -> None:
    with pytest.raises(ManifestError, match="larger than 100 bytes"):
        JobManifest.from_json(json.dumps(VALID), max_bytes=100)


@pytest.mark.parametrize("body", [b"", b"{", b"[1, 2]", b"\xff\xfe", b"null"])
def test_a_body_that_is_not_a_json_object_is_refused(body: bytes) -> None:
    with pytest.raises(ManifestError):
        JobManifest.from_json(body, max_bytes=1000)


@pytest.mark.parametrize(
    "path",
    ["a.nii", "seg/ct seg.nii.gz", "deep/er/x_1-2.dcm", "a+b.nii", "v(1),x=y@z~.nii", "..hidden.nii", "a..b"],
)
def test_ordinary_relative_paths_are_accepted_as_written(path: str) -> None:
    assert check_relative_path(path) == path
    assert confined_key("net-1/upload/", path) == "net-1/upload/" + path


@pytest.mark.parametrize(
    "path",
    [
        "",
        "/abs.nii",
        "..",
        "../x.nii",
        "a/../../x.nii",
        "a/./x.nii",
        "./x.nii",
        "a//x.nii",
        "dir/",
        "a\\b.nii",
        "nul\x00.nii",
        "tab\t.nii",
        "zero\u200bwidth.nii",
        "%2e%2e/x.nii",
        "a%2Fb",
        "q?x=1",
        "h#x",
        " lead.nii",
        "trail.nii ",
        "x" * 600,
        "é.nii",
    ],
)
def test_hostile_or_unstorable_paths_are_refused(path: str) -> None:
    with pytest.raises(KeyOutsidePrefixError):
        confined_key("net-1/upload/", path)


def test_paths_that_would_share_an_xnat_file_are_found() -> None:
    assert find_collisions(["a/seg.nii", "b/seg.nii", "A/SEG.nii", "a/seg.nii"]) == {
        "A/SEG.nii": "a/seg.nii",
        "a/seg.nii": "a/seg.nii",
    }


def test_the_same_basename_in_different_folders_is_not_a_collision() -> None:
    assert find_collisions(["a/seg.nii", "b/seg.nii"]) == {}


def test_confined_keys_gives_every_key_and_every_refusal_with_its_reason() -> None:
    from xnat_upload.exceptions import PathCollisionError
    from xnat_upload.manifest import confined_keys

    keys, refused = confined_keys("net-1/upload/", ["a.nii", "../b.nii", "A.NII"])

    assert keys == {"a.nii": "net-1/upload/a.nii"}
    assert isinstance(refused["../b.nii"], KeyOutsidePrefixError)
    assert isinstance(refused["A.NII"], PathCollisionError)


@pytest.mark.parametrize(
    ("paths", "collisions"),
    [
        (["a", "a/b"], {"a/b": "a"}),
        (["a/b", "a"], {"a": "a/b"}),
        (["a", "A/c"], {"A/c": "a"}),
        (["A/c", "a"], {"a": "A/c"}),
        (["x/y/z.nii", "X/Y"], {"X/Y": "x/y/z.nii"}),
        (["a/b", "A/c"], {}),  # one folder (a or A) holding two files: storable
        (["a/b.nii", "a/b.nii.gz", "ab/c"], {}),  # a name that merely starts like another is no folder of it
    ],
)
def test_a_path_that_would_be_both_a_file_and_a_folder_collides(paths: list[str], collisions: dict[str, str]) -> None:
    assert find_collisions(paths) == collisions


def test_a_file_and_folder_collision_is_refused_with_a_reason_that_names_both() -> None:
    from xnat_upload.exceptions import PathCollisionError
    from xnat_upload.manifest import confined_keys

    keys, refused = confined_keys("net-1/upload/", ["a", "A/c"])

    assert keys == {"a": "net-1/upload/a"}
    assert isinstance(refused["A/c"], PathCollisionError)
    assert "'a'" in refused["A/c"].message and "both a file and a folder" in refused["A/c"].message


@pytest.mark.parametrize("body", [b"[" * 100_000 + b"]" * 100_000, b'{"a": ' * 5000 + b"1" + b"}" * 5000])
def test_json_nested_too_deeply_is_an_invalid_manifest_not_a_crash(body: bytes) -> None:
    with pytest.raises(ManifestError, match="nested too deeply"):
        JobManifest.from_json(body, max_bytes=len(body))


def test_the_manifest_limits_have_one_default_shared_by_settings_schema_and_cli() -> None:
    from xnat_upload.cli.main import make_settings
    from xnat_upload.config import DEFAULT_MAX_MANIFEST_BYTES, DEFAULT_MAX_MANIFEST_FILES, Settings

    assert DEFAULT_MAX_MANIFEST_FILES == 100_000
    assert DEFAULT_MAX_MANIFEST_BYTES == 16 * 1024 * 1024
    service = Settings.from_env({"XNAT_URL": "https://x", "DATA_BUCKET": "b"})
    cli = make_settings("b", env={})
    assert (service.max_manifest_files, service.max_manifest_bytes) == (100_000, 16 * 1024 * 1024)
    assert (cli.max_manifest_files, cli.max_manifest_bytes) == (service.max_manifest_files, service.max_manifest_bytes)


def test_a_manifest_of_100000_paths_validates_and_is_confined_in_well_under_two_seconds() -> None:
    import time

    from xnat_upload.config import DEFAULT_MAX_MANIFEST_FILES
    from xnat_upload.manifest import confined_keys

    paths = [f"sub-{i:06d}/ses-{i % 7}/anat/scan {i:06d}_T1w+run({i % 3}).nii.gz" + "x" * 90 for i in range(100_000)]
    body = json.dumps({**VALID, "files_relative_paths_to_upload": paths})
    assert len(paths) == DEFAULT_MAX_MANIFEST_FILES and len(body) < 16 * 1024 * 1024

    started = time.process_time()  # CPU time: other processes sharing the machine do not count
    manifest = JobManifest.from_json(body, max_bytes=16 * 1024 * 1024)
    keys, refused = confined_keys("net-1/upload/", manifest.files_relative_paths_to_upload)
    elapsed = time.process_time() - started

    assert len(keys) == 100_000 and not refused
    assert elapsed < 2.0, f"validating 100,000 paths took {elapsed:.2f} s of CPU"


@pytest.mark.parametrize(
    ("field", "value"),
    [("net_id", "net-1\n"), ("scan_id", "1\n"), ("scan_xsi_type", "xnat:mrScanData\n")],
)
def test_a_trailing_newline_is_not_a_valid_end_of_an_identifier(field: str, value: str) -> None:
    """Python's `$` matches before a final newline: every rule must refuse it, as the schema does."""
    from xnat_upload.exceptions import KeyOutsidePrefixError, ManifestError
    from xnat_upload.manifest import JobManifest, check_identifier

    manifest = {
        "central_hub_project_id": "CHP-001",
        "accession_id": "ACC0001",
        "net_id": "net-1",
        "scan_id": "1",
        "resource_id": "NIFTI",
        "files_relative_paths_to_upload": ["a.nii"],
        field: value,
    }
    with pytest.raises(ManifestError):
        JobManifest.from_data(manifest)
    if field != "scan_xsi_type":
        with pytest.raises(KeyOutsidePrefixError):
            check_identifier(value, field)


def test_a_job_id_with_a_trailing_newline_is_refused() -> None:
    from xnat_upload.exceptions import ManifestError
    from xnat_upload.submission import check_job_id

    with pytest.raises(ManifestError):
        check_job_id("job-1\n")
