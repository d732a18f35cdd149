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
