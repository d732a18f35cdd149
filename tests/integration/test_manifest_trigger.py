"""An S3 manifest put uploads its files into XNAT: S3 notification -> intake queue -> intake handler ->
FIFO job queue -> worker handler, end to end over real HTTP (moto's S3 and SQS, the XNAT emulator)."""

from __future__ import annotations

import hashlib
import json

import pytest

from devserver.stack import DEMO_ACCESSION, DEMO_PROJECT, LocalStack

from .conftest import make_manifest

FILES = {
    "ct_scan.nii.gz": b"\x1f\x8b" + b"ct-volume" * 5000,
    "seg/ct seg.nii.gz": b"\x1f\x8b" + b"segmentation" * 3000,
    "reports/2026/report.json": b'{"finding": "none"}',
}


def xnat_files(stack: LocalStack, resource: str = "NIFTI") -> dict[str, bytes]:
    return stack.xnat.list_files(DEMO_PROJECT, DEMO_ACCESSION, "1", resource)


def run(stack: LocalStack, manifest: dict | bytes, job_id: str = "job-1") -> dict:
    result = stack.run(job_id, manifest)
    assert result is not None, "a result manifest is written for every job"
    return result


def seed(stack: LocalStack, files: dict[str, bytes] = FILES, net_id: str = "net-1") -> None:
    for path, data in files.items():
        stack.put_image(net_id, path, data)


def test_uploads_every_file_and_reports_clean_urls_in_manifest_order(stack: LocalStack) -> None:
    seed(stack)
    result = run(stack, make_manifest(files_relative_paths_to_upload=list(FILES)))

    assert result["status"] == "succeeded"
    assert [f["status"] for f in result["files"]] == ["uploaded"] * 3
    assert xnat_files(stack) == FILES
    base = f"{stack.xnat.url}/data/projects/{DEMO_PROJECT}/subjects/"
    assert all(url.startswith(base) and "?" not in url for url in result["urls"])
    assert [u.rsplit("/files/", 1)[1] for u in result["urls"]] == [
        "ct_scan.nii.gz",
        "seg/ct%20seg.nii.gz",
        "reports/2026/report.json",
    ]
    for entry in result["files"]:
        assert entry["md5"] == hashlib.md5(FILES[entry["path"]]).hexdigest()
        assert entry["bytes"] == len(FILES[entry["path"]])


def test_returned_urls_serve_the_uploaded_bytes(stack: LocalStack) -> None:
    import requests

    seed(stack)
    result = run(stack, make_manifest(files_relative_paths_to_upload=list(FILES)))
    auth = (stack.xnat_user, stack.xnat_password)
    assert [requests.get(url, auth=auth, timeout=10).content for url in result["urls"]] == list(FILES.values())


def test_logs_in_once_and_logs_out_at_the_end(stack: LocalStack) -> None:
    seed(stack)
    run(stack, make_manifest(files_relative_paths_to_upload=list(FILES)))
    assert stack.xnat.logins == 1
    assert stack.xnat.logouts == 1
    assert stack.xnat.active_sessions == 0


def test_logs_out_even_when_the_job_fails_in_xnat(stack: LocalStack) -> None:
    seed(stack)
    result = run(stack, make_manifest(accession_id="NO_SUCH_SESSION"))
    assert result["error"]["code"] == "experiment_not_found"
    assert stack.xnat.logouts == stack.xnat.logins == 1


def test_creates_scan_with_configured_type_and_the_resource(stack: LocalStack, monkeypatch) -> None:
    monkeypatch.setenv("XNAT_SCAN_XSI_TYPE", "xnat:ctScanData")
    seed(stack)
    run(stack, make_manifest())
    assert stack.xnat.scan_type(DEMO_PROJECT, DEMO_ACCESSION, "1") == "xnat:ctScanData"
    assert stack.xnat.resource_exists(DEMO_PROJECT, DEMO_ACCESSION, "1", "NIFTI")


def test_an_existing_resource_is_reused(stack: LocalStack) -> None:
    stack.xnat.add_resource(DEMO_PROJECT, DEMO_ACCESSION, "1", "NIFTI")
    seed(stack)
    assert run(stack, make_manifest())["status"] == "succeeded"


def test_exist_ok_false_keeps_the_file_in_xnat_and_says_already_exists(stack: LocalStack) -> None:
    stack.xnat.add_file(DEMO_PROJECT, DEMO_ACCESSION, "1", "NIFTI", "ct_scan.nii.gz", b"older version")
    seed(stack)
    result = run(stack, make_manifest(files_relative_paths_to_upload=list(FILES), exist_ok=False))

    by_path = {f["path"]: f for f in result["files"]}
    assert by_path["ct_scan.nii.gz"]["status"] == "already_exists"
    assert by_path["ct_scan.nii.gz"]["error_code"] == "already_exists"
    assert by_path["ct_scan.nii.gz"]["error"] == (
        "'ct_scan.nii.gz' is already in XNAT with other content and exist_ok is false: XNAT's copy was kept; "
        'to replace it, submit again with "exist_ok": true'
    )
    assert by_path["seg/ct seg.nii.gz"]["status"] == by_path["reports/2026/report.json"]["status"] == "uploaded"
    assert result["status"] == "partial"
    assert xnat_files(stack)["ct_scan.nii.gz"] == b"older version"
    assert len(result["urls"]) == 2


def test_exist_ok_true_replaces_the_file_in_xnat(stack: LocalStack) -> None:
    stack.xnat.add_file(DEMO_PROJECT, DEMO_ACCESSION, "1", "NIFTI", "ct_scan.nii.gz", b"older version")
    seed(stack)
    result = run(stack, make_manifest(exist_ok=True))

    assert result["status"] == "succeeded"
    assert result["files"][0]["status"] == "uploaded"
    assert xnat_files(stack)["ct_scan.nii.gz"] == FILES["ct_scan.nii.gz"]


def test_a_file_already_identical_in_xnat_is_not_sent_again(stack: LocalStack) -> None:
    stack.xnat.add_file(DEMO_PROJECT, DEMO_ACCESSION, "1", "NIFTI", "ct_scan.nii.gz", FILES["ct_scan.nii.gz"])
    seed(stack)
    result = run(stack, make_manifest(exist_ok=False))

    assert result["status"] == "succeeded"
    assert result["files"][0]["status"] == "already_exists"
    assert result["files"][0]["identical"] is True
    assert stack.xnat.count("PUT", "/files/") == 0


PART = 5 * 1024 * 1024  # S3's smallest part but the last


def put_in_parts(stack: LocalStack, path: str, data: bytes) -> str:
    """A real multipart upload to moto: the object's ETag is `"<md5 of part md5s>-2"`, not its MD5."""
    s3, key = stack.s3(), f"net-1/upload/{path}"
    upload = s3.create_multipart_upload(Bucket=stack.bucket, Key=key)
    parts = [
        {"PartNumber": n, "ETag": s3.upload_part(Bucket=stack.bucket, Key=key, UploadId=upload["UploadId"],
                                                 PartNumber=n, Body=chunk)["ETag"]}
        for n, chunk in enumerate((data[:PART], data[PART:]), start=1)
    ]  # fmt: skip
    done = s3.complete_multipart_upload(
        Bucket=stack.bucket, Key=key, UploadId=upload["UploadId"], MultipartUpload={"Parts": parts}
    )
    assert done["ETag"].strip('"').endswith("-2")
    return done["ETag"]


MULTIPART = b"".join(bytes([n % 251]) * 4096 for n in range(PART // 4096 + 3))


@pytest.mark.parametrize("exist_ok", [False, True])
def test_the_same_bytes_uploaded_in_parts_are_recognised_as_already_in_xnat(stack: LocalStack, exist_ok: bool) -> None:
    put_in_parts(stack, "ct_parts.nii", MULTIPART)
    stack.xnat.add_file(DEMO_PROJECT, DEMO_ACCESSION, "1", "NIFTI", "ct_parts.nii", MULTIPART)

    result = run(stack, make_manifest(files_relative_paths_to_upload=["ct_parts.nii"], exist_ok=exist_ok))

    assert result["status"] == "succeeded", result
    entry = result["files"][0]
    assert entry["status"] == "already_exists" and entry["identical"] is True and "error" not in entry
    assert entry["md5"] == hashlib.md5(MULTIPART).hexdigest()
    assert stack.xnat.count("PUT", "/files/") == 0, "identical: not sent again"


def test_other_bytes_of_the_same_size_uploaded_in_parts_are_told_apart(stack: LocalStack) -> None:
    put_in_parts(stack, "ct_parts.nii", MULTIPART)
    other = MULTIPART[:-1] + b"\x00"
    stack.xnat.add_file(DEMO_PROJECT, DEMO_ACCESSION, "1", "NIFTI", "ct_parts.nii", other)

    result = run(stack, make_manifest(files_relative_paths_to_upload=["ct_parts.nii"], exist_ok=False))

    entry = result["files"][0]
    assert entry["status"] == "already_exists" and entry["identical"] is False
    assert entry["error_code"] == "already_exists"
    assert xnat_files(stack)["ct_parts.nii"] == other


def test_an_object_in_parts_overwritten_before_it_is_hashed_is_not_compared_or_sent(stack: LocalStack) -> None:
    put_in_parts(stack, "ct_parts.nii", MULTIPART)
    stack.xnat.add_file(DEMO_PROJECT, DEMO_ACCESSION, "1", "NIFTI", "ct_parts.nii", MULTIPART)
    newer = bytes(reversed(MULTIPART))  # same size, other bytes
    stack.xnat.on_request(lambda: put_in_parts(stack, "ct_parts.nii", newer), "GET", "/files")  # after validation

    result = run(stack, make_manifest(files_relative_paths_to_upload=["ct_parts.nii"], exist_ok=True))

    entry = result["files"][0]
    assert entry["status"] == "failed" and entry["error_code"] == "source_changed", entry
    assert xnat_files(stack)["ct_parts.nii"] == MULTIPART
    assert stack.xnat.count("PUT", "/files/") == 0


HOSTILE_PATHS = [
    "../other-net/upload/x.nii",
    "../../etc/passwd",
    "/etc/passwd",
    "a/../../b.nii",
    "./x.nii",
    "a//b.nii",
    "a/./b.nii",
    "a\\..\\b.nii",
    "x.nii\x00.png",
    "line\nbreak.nii",
    "..",
    "",
    "%2e%2e/escape.nii",
    "a%2Fb.nii",
    "name?query=1.nii",
    "frag#ment.nii",
    " leading-space.nii",
    "dir/",
]
HOSTILE_IDS = [
    {"net_id": "../net-2"},
    {"net_id": "net-1/upload/.."},
    {"net_id": ".."},
    {"net_id": ""},
    {"accession_id": "../../projects/OTHER"},
    {"accession_id": "ACC0001?format=json"},
    {"scan_id": "1/resources/X"},
    {"resource_id": "NIFTI/files/x"},
    {"net_id": "net 1"},
]


@pytest.mark.parametrize("path", HOSTILE_PATHS)
def test_hostile_paths_are_refused_and_nothing_is_uploaded(stack: LocalStack, path: str) -> None:
    seed(stack)
    result = run(stack, make_manifest(files_relative_paths_to_upload=["ct_scan.nii.gz", path]))

    assert result["status"] == "failed"
    assert result["error"]["code"] in ("key_outside_prefix", "invalid_manifest")
    assert result["urls"] == []
    assert stack.xnat.logins == 0, "XNAT is not touched when any path is refused"
    statuses = {f["path"]: f["status"] for f in result["files"]}
    if result["error"]["code"] == "key_outside_prefix":
        assert statuses[path] == "rejected"
        assert statuses["ct_scan.nii.gz"] == "skipped"


@pytest.mark.parametrize("override", HOSTILE_IDS, ids=lambda o: json.dumps(o))
def test_hostile_identifiers_are_refused_and_nothing_is_uploaded(stack: LocalStack, override: dict) -> None:
    seed(stack)
    result = run(stack, make_manifest(**override))

    assert result["status"] == "failed"
    assert result["error"]["code"] == "invalid_manifest"
    assert field_named(result["error"]["message"], next(iter(override)))
    assert stack.xnat.logins == 0


def field_named(message: str, field: str) -> bool:
    return field in message


def test_two_paths_landing_on_the_same_xnat_name_are_refused(stack: LocalStack) -> None:
    seed(stack, {"a/seg.nii": b"1", "A/seg.nii": b"2"})
    result = run(stack, make_manifest(files_relative_paths_to_upload=["a/seg.nii", "A/seg.nii"]))
    assert result["error"]["code"] == "path_collision"
    assert stack.xnat.logins == 0


@pytest.mark.parametrize(("paths", "refused"), [(["a", "a/b"], "a/b"), (["a/b", "A"], "A"), (["a", "A/c"], "A/c")])
def test_a_path_that_would_be_both_a_file_and_a_folder_is_refused(
    stack: LocalStack, paths: list[str], refused: str
) -> None:
    seed(stack, dict.fromkeys(paths, b"x"))
    result = run(stack, make_manifest(files_relative_paths_to_upload=paths))

    assert result["status"] == "failed"
    assert result["error"]["code"] == "path_collision"
    entry = next(f for f in result["files"] if f["path"] == refused)
    assert entry["status"] == "rejected" and "both a file and a folder" in entry["error"]
    assert stack.xnat.logins == 0


def test_a_manifest_nested_thousands_deep_is_an_invalid_manifest_not_a_crash(stack: LocalStack) -> None:
    body = b"[" * 100_000 + b"]" * 100_000  # 200 KB: json.loads raises RecursionError

    result = run(stack, body, job_id="nested")

    assert result["status"] == "failed"
    assert result["error"] == {
        "code": "invalid_manifest",
        "message": "manifest is not valid JSON: it is nested too deeply",
    }
    assert stack.xnat.logins == 0


def test_a_result_document_nested_too_deeply_does_not_stop_the_rerun(stack: LocalStack) -> None:
    seed(stack)
    nested = b'{"files": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    stack.s3().put_object(Bucket=stack.bucket, Key="results/job-1.json", Body=nested)  # read for known MD5s

    result = run(stack, make_manifest(files_relative_paths_to_upload=list(FILES)))

    assert result["status"] == "succeeded"


def test_a_refused_manifest_lists_every_requested_path_in_its_result(stack: LocalStack) -> None:
    """Within MAX_MANIFEST_FILES nothing is cut: 10,001 paths, all missing, all listed."""
    paths = [f"many/f{i:05d}.nii" for i in range(10_001)]

    result = run(stack, make_manifest(files_relative_paths_to_upload=paths), job_id="many")

    assert result["error"]["code"] == "object_not_found"
    assert [f["path"] for f in result["files"]] == paths
    assert {f["status"] for f in result["files"]} == {"missing"}


def test_a_manifest_over_the_file_limit_says_its_result_lists_none(
    stack: LocalStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MAX_MANIFEST_FILES", "10000")
    paths = [f"many/f{i:05d}.nii" for i in range(10_001)]

    result = run(stack, make_manifest(files_relative_paths_to_upload=paths), job_id="too-many")

    assert result["error"]["code"] == "invalid_manifest"
    assert result["files"] == []
    assert "10001 files, more than 10000 files" in result["error"]["message"]
    assert "the result lists none of its 10001 entries" in result["error"]["message"]


def test_a_missing_object_fails_the_job_before_anything_is_uploaded(stack: LocalStack) -> None:
    seed(stack)
    result = run(stack, make_manifest(files_relative_paths_to_upload=["ct_scan.nii.gz", "not/there.nii"]))

    assert result["status"] == "failed"
    assert result["error"]["code"] == "object_not_found"
    assert {f["path"]: f["status"] for f in result["files"]} == {
        "ct_scan.nii.gz": "skipped",
        "not/there.nii": "missing",
    }
    assert "net-1/upload/not/there.nii" in result["files"][1]["error"]
    assert stack.xnat.logins == 0


def test_a_missing_object_is_refused_by_the_intake_without_waiting_for_the_resources_turn(
    stack: LocalStack,
) -> None:
    """The resource's message group is held by a job waiting for an XNAT that is down; a manifest
    naming an object that does not exist needs no XNAT to be refused, and is, at intake."""
    seed(stack)
    stack.xnat.set_down(True)
    stack.put_manifest("waits", make_manifest(files_relative_paths_to_upload=["ct_scan.nii.gz"]))
    stack.drain()
    assert stack.read_job("waits")["state"] == "waiting_for_xnat"
    assert stack.intake is not None

    stack.put_manifest("bad-key", make_manifest(files_relative_paths_to_upload=["ct_scan.nii.gz", "not/there.nii"]))
    stack.intake.poll_once()

    result = stack.read_result("bad-key")
    assert result is not None and result["error"]["code"] == "object_not_found"
    assert [f["status"] for f in result["files"]] == ["skipped", "missing"]
    assert result["finished_at"]
    assert (stack.read_job("bad-key") or {}).get("state") != "queued", "refused, not queued"


def test_many_objects_are_checked_at_intake_with_a_listing_and_one_missing_is_named(stack: LocalStack) -> None:
    paths = [f"many/{i:03d}.nii" for i in range(120)]
    for path in paths[:-1]:
        stack.put_image("net-1", path, path.encode())
    stack.put_manifest("many-missing", make_manifest(files_relative_paths_to_upload=paths))
    assert stack.intake is not None

    stack.intake.poll_once()

    result = stack.read_result("many-missing")
    assert result is not None and result["error"]["code"] == "object_not_found"
    assert [f["path"] for f in result["files"] if f["status"] == "missing"] == [paths[-1]]
    assert stack.xnat.logins == 0


def test_objects_of_another_net_are_not_reachable(stack: LocalStack) -> None:
    stack.put_image("net-2", "secret.nii", b"other net")
    result = run(stack, make_manifest(files_relative_paths_to_upload=["secret.nii"]))
    assert result["error"]["code"] == "object_not_found"


def test_an_unknown_project_fails_the_job_with_a_clear_error(stack: LocalStack) -> None:
    seed(stack)
    result = run(stack, make_manifest(central_hub_project_id="CHP-404"))

    assert result["status"] == "failed"
    assert result["error"]["code"] == "project_not_found"
    assert "CHP-404" in result["error"]["message"]
    assert [f["status"] for f in result["files"]] == ["skipped"]


def test_an_unknown_experiment_fails_the_job_with_a_clear_error(stack: LocalStack) -> None:
    seed(stack)
    result = run(stack, make_manifest(accession_id="ACC9999"))
    assert result["error"]["code"] == "experiment_not_found"
    assert "ACC9999" in result["error"]["message"]
    assert stack.xnat.count("PUT") == 0


def test_xnat_failing_a_put_marks_that_file_failed_and_the_job_partial(stack: LocalStack) -> None:
    seed(stack)
    stack.xnat.fail_next(500, times=50, method="PUT", path_contains="report.json")
    result = run(stack, make_manifest(files_relative_paths_to_upload=list(FILES)))

    by_path = {f["path"]: f for f in result["files"]}
    assert by_path["reports/2026/report.json"]["status"] == "failed"
    assert "500" in by_path["reports/2026/report.json"]["error"]
    assert by_path["ct_scan.nii.gz"]["status"] == "uploaded"
    assert result["status"] == "partial"
    assert "reports/2026/report.json" not in xnat_files(stack)


def test_a_malformed_json_manifest_gets_a_result_with_a_clear_error(stack: LocalStack) -> None:
    result = run(stack, b'{"central_hub_project_id": "CHP-001", ', job_id="broken")

    assert result["job_id"] == "broken"
    assert result["status"] == "failed"
    assert result["error"]["code"] == "invalid_manifest"
    assert "not valid JSON" in result["error"]["message"]
    assert stack.xnat.logins == 0


def test_a_manifest_missing_a_field_names_the_field(stack: LocalStack) -> None:
    manifest = make_manifest()
    del manifest["accession_id"]
    result = run(stack, manifest)

    assert result["error"]["code"] == "invalid_manifest"
    assert "accession_id" in result["error"]["message"]
    assert [f["path"] for f in result["files"]] == ["ct_scan.nii.gz"]


def test_unknown_manifest_fields_are_refused_not_ignored(stack: LocalStack) -> None:
    result = run(stack, make_manifest(overwrite_everything=True))
    assert result["error"]["code"] == "invalid_manifest"
    assert "overwrite_everything" in result["error"]["message"]


def test_an_s3_event_with_a_url_encoded_key_finds_the_manifest(stack: LocalStack) -> None:
    seed(stack)
    event = stack.put_manifest("2026/batch one+two", make_manifest())
    assert event["Records"][0]["s3"]["object"]["key"] == "manifests/2026/batch+one%2Btwo.json"

    assert stack.invoke_trigger(event) == {"batchItemFailures": []}
    stack.drain()

    assert stack.read_result("2026/batch one+two")["status"] == "succeeded"


def test_objects_outside_the_manifests_prefix_are_ignored(stack: LocalStack) -> None:
    event = stack.put_manifest("ignored", make_manifest())
    event["Records"][0]["s3"]["object"]["key"] = "results/ignored.json"
    assert stack.invoke_trigger(event) == {"batchItemFailures": []}
    assert stack.queue_depth("jobs") == 0
    assert stack.read_result("ignored") is None


def test_several_records_in_one_event_each_get_a_result(stack: LocalStack) -> None:
    seed(stack)
    first = stack.put_manifest("one", make_manifest())
    second = stack.put_manifest("two", b"not json")
    event = {"Records": first["Records"] + second["Records"]}

    assert stack.invoke_trigger(event) == {"batchItemFailures": []}
    stack.drain()

    assert stack.read_result("one")["status"] == "succeeded"
    assert stack.read_result("two")["status"] == "failed"


def test_a_scan_named_files_does_not_confuse_the_listing(stack: LocalStack) -> None:
    stack.xnat.add_file(DEMO_PROJECT, DEMO_ACCESSION, "files", "NIFTI", "ct_scan.nii.gz", b"older version")
    seed(stack)
    result = run(stack, make_manifest(scan_id="files", exist_ok=False))

    assert result["files"][0]["status"] == "already_exists"
    assert stack.xnat.get_file(DEMO_PROJECT, DEMO_ACCESSION, "files", "NIFTI", "ct_scan.nii.gz") == b"older version"


def test_a_project_id_given_as_the_central_hub_project_id_is_named_with_the_secondary_id_to_use(
    stack: LocalStack,
) -> None:
    # The demo project's XNAT ID is PRJ001; its secondary ID, the central hub project ID, is CHP-001.
    seed(stack)
    result = run(stack, make_manifest(central_hub_project_id="PRJ001"))

    assert result["error"]["code"] == "project_not_found"
    assert result["error"]["message"] == (
        "no XNAT project has secondary ID 'PRJ001', but 'PRJ001' is the XNAT project ID of the project whose "
        "secondary ID is 'CHP-001': set central_hub_project_id to 'CHP-001'"
    )


def test_an_unknown_project_says_the_central_hub_project_id_is_the_secondary_id(stack: LocalStack) -> None:
    seed(stack)
    result = run(stack, make_manifest(central_hub_project_id="CHP-404"))

    assert result["error"]["message"] == (
        "no XNAT project has secondary ID 'CHP-404'; central_hub_project_id must be the project's secondary ID "
        "(its 'Running Title' in XNAT), not its project ID"
    )
