"""The API Gateway routes over real HTTP, through the docker-free local API server."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from devserver.handlers import load_handler_module
from devserver.lambda_context import LocalLambdaContext
from devserver.local_api import LocalApiServer, proxy_event
from devserver.stack import DEMO_ACCESSION, DEMO_PROJECT, DEMO_SECONDARY_ID, LocalStack

from .conftest import make_manifest, wait_for_job

ROOT = Path(__file__).resolve().parents[2]


def upload_body(files: list[str], **overrides: object) -> dict:
    body = {
        "central_hub_project_id": DEMO_SECONDARY_ID,
        "accession_id": DEMO_ACCESSION,
        "scan_id": "1",
        "resource_id": "NIFTI",
        "files": files,
        "exist_ok": False,
    }
    body.update(overrides)
    return body


def put_upload(api: str, body: dict, net_id: str = "net-1") -> requests.Response:
    return requests.put(f"{api}/upload/images/{net_id}", json=body, timeout=60)


def xnat_files(stack: LocalStack) -> dict[str, bytes]:
    return stack.xnat.list_files(DEMO_PROJECT, DEMO_ACCESSION, "1", "NIFTI")


# -- PUT /upload/images/{net_id}: the seed's synchronous route ------------------------------------


def test_sync_upload_answers_200_with_the_urls_in_manifest_order(running_api: str, stack: LocalStack) -> None:
    api = running_api
    names = [f"slices/slice_{i:03d}.dcm" for i in range(20)][::-1]
    for name in names:
        stack.put_image("net-1", name, name.encode() * 100)

    response = put_upload(api, upload_body(names))

    assert response.status_code == 200, response.text
    urls = response.json()
    assert len(urls) == 20
    assert [url.rsplit("/files/", 1)[1] for url in urls] == names
    assert set(xnat_files(stack)) == set(names)


def test_sync_upload_goes_through_the_job_queue_and_writes_a_result_manifest(
    running_api: str, stack: LocalStack
) -> None:
    stack.put_image("net-1", "a.nii", b"a")
    assert put_upload(running_api, upload_body(["a.nii"])).status_code == 200
    results = stack.s3().list_objects_v2(Bucket=stack.bucket, Prefix="results/sync-")["Contents"]
    assert len(results) == 1
    assert stack.worker is not None and stack.worker.stats.invocations == 1, "the worker did the upload"


@pytest.mark.parametrize(
    "body",
    [
        {"accession_id": "ACC0001"},
        upload_body(["a.nii"], exist_ok="yes"),
        upload_body(["a.nii"], surprise=True),
        upload_body([]),
        upload_body(["a.nii"], scan_id="../1"),
    ],
    ids=["missing-fields", "exist-ok-not-bool", "unknown-field", "no-files", "hostile-scan-id"],
)
def test_an_invalid_body_is_400(api: str, body: dict) -> None:
    response = put_upload(api, body)
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"


def test_a_body_that_is_not_json_is_400(api: str) -> None:
    response = requests.put(f"{api}/upload/images/net-1", data=b"{not json", timeout=30)
    assert response.status_code == 400


@pytest.mark.parametrize("path", ["../net-2/upload/x.nii", "/etc/passwd", "a/../../b", "a\\b", "x%2F..%2Fy"])
def test_a_hostile_path_is_400_and_nothing_is_uploaded(api: str, stack: LocalStack, path: str) -> None:
    stack.put_image("net-1", "a.nii", b"a")
    response = put_upload(api, upload_body(["a.nii", path]))

    assert response.status_code == 400
    assert response.json()["error"] == "key_outside_prefix"
    assert stack.xnat.logins == 0
    assert xnat_files(stack) == {}


def test_a_hostile_net_id_in_the_path_is_refused(api: str, stack: LocalStack) -> None:
    response = requests.put(f"{api}/upload/images/net%201", json=upload_body(["a.nii"]), timeout=30)
    assert response.status_code in (400, 404)
    assert stack.xnat.logins == 0


@pytest.mark.parametrize(
    ("overrides", "code"),
    [
        ({"central_hub_project_id": "CHP-404"}, "project_not_found"),
        ({"accession_id": "ACC9999"}, "experiment_not_found"),
        ({"files": ["not-there.nii"]}, "object_not_found"),
    ],
)
def test_what_cannot_be_found_is_404(running_api: str, stack: LocalStack, overrides: dict, code: str) -> None:
    stack.put_image("net-1", "a.nii", b"a")
    response = put_upload(running_api, {**upload_body(["a.nii"]), **overrides})
    assert response.status_code == 404
    assert response.json()["error"] == code


def test_an_existing_file_with_exist_ok_false_is_409(running_api: str, stack: LocalStack) -> None:
    stack.xnat.add_file(DEMO_PROJECT, DEMO_ACCESSION, "1", "NIFTI", "a.nii", b"old")
    stack.put_image("net-1", "a.nii", b"new")
    response = put_upload(running_api, upload_body(["a.nii"]))

    assert response.status_code == 409
    assert response.json()["error"] == "already_exists"
    assert response.json()["message"].endswith(
        '(exist_ok is false; to replace them, submit again with "exist_ok": true)'
    )
    assert xnat_files(stack) == {"a.nii": b"old"}


def test_exist_ok_true_replaces_and_answers_200(running_api: str, stack: LocalStack) -> None:
    stack.xnat.add_file(DEMO_PROJECT, DEMO_ACCESSION, "1", "NIFTI", "a.nii", b"old")
    stack.put_image("net-1", "a.nii", b"new")
    assert put_upload(running_api, upload_body(["a.nii"], exist_ok=True)).status_code == 200
    assert xnat_files(stack) == {"a.nii": b"new"}


def test_xnat_failing_is_502_with_the_result(running_api: str, stack: LocalStack) -> None:
    stack.put_image("net-1", "a.nii", b"a")
    stack.xnat.fail_next(500, times=100, method="PUT", path_contains="/files/")
    response = put_upload(running_api, upload_body(["a.nii"]))

    assert response.status_code == 502
    body = response.json()
    assert body["error"] == "xnat_error"
    assert body["result"]["files"][0]["status"] == "failed"


def test_a_job_that_does_not_end_in_time_answers_202_and_keeps_running(
    running_api: str, stack: LocalStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("API_TIME_LIMIT_SECONDS", "1")  # the route cannot wait at all
    stack.put_image("net-1", "a.nii", b"a")
    response = put_upload(running_api, upload_body(["a.nii"]))

    assert response.status_code == 202
    body = response.json()
    assert body["job_id"].startswith("sync-") and body["status_url"] == f"/v1/jobs/{body['job_id']}"
    assert response.headers["Location"] == body["status_url"]
    done = wait_for_job(running_api, body["job_id"])
    assert done.status_code == 200 and done.json()["status"] == "succeeded"


# -- POST /jobs and GET /jobs/{job_id}: the asynchronous route -----------------------------------


def test_a_submitted_job_is_queued_then_answers_with_its_result(api: str, stack: LocalStack) -> None:
    stack.put_image("net-1", "ct_scan.nii.gz", b"ct")
    submitted = requests.post(f"{api}/jobs", json={**make_manifest(), "job_id": "job-42"}, timeout=30)

    assert submitted.status_code == 202
    assert submitted.json()["job_id"] == "job-42"
    assert submitted.json()["status_url"] == "/v1/jobs/job-42", "the stage is part of the URL API Gateway serves"
    assert submitted.headers["Location"] == "/v1/jobs/job-42"
    queued = requests.get(f"{api}/jobs/job-42", timeout=30)
    assert queued.status_code == 202 and queued.json()["status"] == "queued"

    assert stack.intake is not None and stack.intake.poll_once() >= 1  # validated, on the job queue
    queued = requests.get(f"{api}/jobs/job-42", timeout=30)
    assert queued.status_code == 202 and queued.json()["progress"]["state"] == "queued"
    assert queued.json()["progress"]["files_total"] == 1

    stack.drain()

    done = requests.get(f"{api}/jobs/job-42", timeout=30)
    assert done.status_code == 200
    body = done.json()
    assert body["status"] == "succeeded" and body["counts"] == {"uploaded": 1}
    assert body["result_location"] == f"s3://{stack.bucket}/results/job-42.json"
    assert body["files"] == [], "by default only the files that need attention are listed"
    everything = requests.get(f"{api}/jobs/job-42", params={"files": "all"}, timeout=30).json()
    assert everything["files"][0]["url"].endswith("/files/ct_scan.nii.gz")


@pytest.mark.parametrize(
    ("requested_path", "stage", "status_url"),
    [
        ("/prod/jobs", "prod", "/prod/jobs/job-7"),  # the execute-api URL: the stage comes first
        ("/uploads/jobs", "v1", "/uploads/jobs/job-7"),  # a custom domain's base path mapping
        ("/jobs", "v1", "/jobs/job-7"),  # a custom domain mapped at its root
        (None, "v1", "/v1/jobs/job-7"),  # no requested path in the event: the stage is the best guess
    ],
    ids=["stage", "custom-domain-base-path", "custom-domain-root", "stage-only"],
)
def test_status_url_is_the_path_the_caller_used_with_its_stage(
    stack: LocalStack, requested_path: str | None, stage: str, status_url: str
) -> None:
    body = json.dumps({**make_manifest(), "job_id": "job-7"}).encode()
    event = proxy_event("POST", "/jobs", {"Content-Type": "application/json"}, body, "127.0.0.1")
    event["requestContext"].update(stage=stage, path=requested_path)

    response = load_handler_module("upload_api").lambda_handler(event, LocalLambdaContext("upload-api", 29))

    assert response["statusCode"] == 202, response["body"]
    assert json.loads(response["body"])["status_url"] == status_url
    assert response["multiValueHeaders"]["Location"] == [status_url]


def test_a_job_id_is_generated_when_none_is_given(api: str) -> None:
    submitted = requests.post(f"{api}/jobs", json=make_manifest(), timeout=30)
    assert submitted.status_code == 202
    assert requests.get(f"{api}{submitted.json()['status_url']}", timeout=30).status_code == 202


def test_submitting_the_same_job_twice_is_idempotent(api: str, stack: LocalStack) -> None:
    body = {**make_manifest(), "job_id": "same"}
    first = requests.post(f"{api}/jobs", json=body, timeout=30)
    second = requests.post(f"{api}/jobs", json=body, timeout=30)

    assert (first.status_code, second.status_code) == (202, 202)
    assert second.json()["status"] == "already_submitted"
    versions = stack.s3().list_object_versions(Bucket=stack.bucket, Prefix="manifests/same.json")["Versions"]
    assert len(versions) == 1, "the manifest is put once, so the trigger runs once"


def test_the_same_job_id_with_another_manifest_is_409(api: str) -> None:
    requests.post(f"{api}/jobs", json={**make_manifest(), "job_id": "taken"}, timeout=30)
    response = requests.post(f"{api}/jobs", json={**make_manifest(exist_ok=True), "job_id": "taken"}, timeout=30)
    assert response.status_code == 409
    assert response.json()["error"] == "job_conflict"


def test_a_job_with_hostile_paths_is_refused_before_it_is_stored(api: str, stack: LocalStack) -> None:
    body = {**make_manifest(files_relative_paths_to_upload=["../../etc/passwd"]), "job_id": "evil"}
    response = requests.post(f"{api}/jobs", json=body, timeout=30)

    assert response.status_code == 400
    assert response.json()["error"] == "key_outside_prefix"
    assert stack.s3().list_objects_v2(Bucket=stack.bucket, Prefix="manifests/")["KeyCount"] == 0


@pytest.mark.parametrize("job_id", ["../x", "a b", ".hidden", "x" * 200])
def test_a_bad_job_id_is_400(api: str, job_id: str) -> None:
    response = requests.post(f"{api}/jobs", json={**make_manifest(), "job_id": job_id}, timeout=30)
    assert response.status_code == 400


def test_an_unknown_job_is_404(api: str) -> None:
    response = requests.get(f"{api}/jobs/never-submitted", timeout=30)
    assert response.status_code == 404
    assert response.json()["error"] == "job_not_found"


# -- requests no operation takes: 404, 405, 415, bodies that cannot be read ----------------------

DEMO_JOB = {**make_manifest(), "job_id": "demo"}


@pytest.fixture(scope="module")
def bare_api() -> Iterator[str]:
    """The API with no stack behind it, for answers given before any route runs: a route reached by
    mistake would fail for want of configuration instead."""
    with LocalApiServer() as server:
        yield server.url


@pytest.mark.parametrize(
    "path",
    ["/upload/images/%F0%9F", "/upload/images/a%2Fb", "/upload/images/a\u2024b", "/upload/images/", "/uploads"],
    ids=["broken-utf8", "encoded-slash", "one-dot-leader", "no-net-id", "unknown"],
)
def test_a_path_that_matches_no_route_is_404_not_a_crash(bare_api: str, path: str) -> None:
    response = requests.put(f"{bare_api}{path}", json=upload_body(["a.nii"]), timeout=30)

    assert response.status_code == 404, response.text
    assert response.json()["error"] == "not_found"


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("DELETE", "/jobs/job-1", "GET"),
        ("POST", "/jobs/job-1", "GET"),
        ("DELETE", "/jobs", "GET, POST"),
        ("PATCH", "/jobs", "GET, POST"),
        ("GET", "/upload/images/net-1", "PUT"),
        ("OPTIONS", "/upload/images/net-1", "PUT"),
        ("TRACE", "/jobs/job-1", "GET"),
        ("POST", "/openapi.json", "GET"),
    ],
)
def test_a_method_a_route_does_not_have_is_405_with_the_methods_it_has(
    bare_api: str, method: str, path: str, allowed: str
) -> None:
    response = requests.request(method, f"{bare_api}{path}", timeout=30)

    assert response.status_code == 405, response.text
    assert response.headers["Allow"] == allowed
    assert response.json()["error"] == "method_not_allowed"


def test_head_is_405_without_a_body(bare_api: str) -> None:
    response = requests.head(f"{bare_api}/jobs/job-1", timeout=30)
    assert (response.status_code, response.headers["Allow"], response.content) == (405, "GET", b"")


@pytest.mark.parametrize(
    "content_type",
    ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", "application/xml"],
)
@pytest.mark.parametrize(("method", "path"), [("POST", "/jobs"), ("PUT", "/upload/images/net-1")])
def test_a_body_that_is_not_application_json_is_415(bare_api: str, method: str, path: str, content_type: str) -> None:
    body = json.dumps(DEMO_JOB if method == "POST" else upload_body(["a.nii"]))
    headers = {"Content-Type": content_type}
    response = requests.request(method, f"{bare_api}{path}", data=body, headers=headers, timeout=30)

    assert response.status_code == 415, response.text
    assert response.json()["error"] == "unsupported_media_type"
    assert "send the header 'Content-Type: application/json'" in response.json()["message"]


def test_json_with_a_charset_is_json(api: str) -> None:
    headers = {"Content-Type": "Application/JSON; charset=utf-8"}
    response = requests.post(f"{api}/jobs", data=json.dumps(DEMO_JOB), headers=headers, timeout=30)
    assert response.status_code == 202, response.text


@pytest.mark.parametrize(
    "body",
    [b"[" * 100_000 + b"]" * 100_000, b'{"files": ' + b"[" * 50_000 + b"]" * 50_000 + b"}", b"\xff\xfe{}", b"{"],
    ids=["nested-arrays", "nested-field", "not-utf8", "truncated"],
)
@pytest.mark.parametrize(("method", "path"), [("POST", "/jobs"), ("PUT", "/upload/images/net-1")])
def test_a_body_that_cannot_be_read_as_json_is_400_not_a_crash(
    bare_api: str, method: str, path: str, body: bytes
) -> None:
    headers = {"Content-Type": "application/json"}
    response = requests.request(method, f"{bare_api}{path}", data=body, headers=headers, timeout=30)

    assert response.status_code == 400, response.text[:500]
    assert response.json()["error"] == "invalid_request"
    assert response.json()["problems"][0]["loc"] == ["body"]


# -- the API refuses what the intake refuses, with the intake's error code -------------------------


def stored_size(manifest: dict) -> int:
    """The bytes of a manifest as the API stores it, which are what the intake measures."""
    return len(json.dumps(manifest).encode())


def intake_error(stack: LocalStack, job_id: str, manifest: dict) -> str | None:
    """The intake's error code for `manifest` put straight into S3 (None: it queued the job)."""
    stack.put_manifest(job_id, manifest)
    assert stack.intake is not None
    stack.intake.poll_once()
    result = stack.read_result(job_id)
    return result["error"]["code"] if result else None


def test_a_manifest_stored_larger_than_max_manifest_bytes_is_refused_as_the_intake_refuses_it(
    api: str, stack: LocalStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    fits = make_manifest(files_relative_paths_to_upload=["a" * 100])
    too_big = make_manifest(files_relative_paths_to_upload=["a" * 101])
    monkeypatch.setenv("MAX_MANIFEST_BYTES", str(stored_size(fits)))
    stack.put_image("net-1", "a" * 100, b"the image")  # the intake checks that it exists

    refused = requests.post(f"{api}/jobs", json={**too_big, "job_id": "too-big"}, timeout=30)
    accepted = requests.post(f"{api}/jobs", json={**fits, "job_id": "fits"}, timeout=30)

    assert refused.status_code == 400 and refused.json()["error"] == "invalid_manifest"
    assert "larger than" in refused.json()["message"]
    assert not requests.get(f"{api}/jobs/too-big", timeout=30).ok, "nothing was stored"
    assert accepted.status_code == 202, "the request body (with its job_id) is bigger; the stored manifest fits"
    head = stack.s3().head_object(Bucket=stack.bucket, Key="manifests/fits.json")
    assert head["ContentLength"] == stored_size(fits)
    assert intake_error(stack, "too-big-in-s3", too_big) == "invalid_manifest"
    assert stack.read_result("fits") is None and stack.queue_depth("jobs") == 1, "the intake queued the one that fits"


@pytest.mark.parametrize(
    ("limits", "files", "code"),
    [
        ({"MAX_MANIFEST_FILES": "2"}, ["a", "b", "c"], "invalid_manifest"),
        ({}, ["a" * 513], "invalid_manifest"),
        ({}, ["a", "../b"], "key_outside_prefix"),
        ({}, ["a", "A/b"], "path_collision"),
        ({}, ["a", "A", "../b"], "key_outside_prefix"),
    ],
    ids=["too-many-files", "path-too-long", "hostile-path", "collision", "collision-and-hostile-path"],
)
def test_the_api_refuses_what_the_intake_refuses_with_the_same_code(
    api: str, stack: LocalStack, monkeypatch: pytest.MonkeyPatch, limits: dict, files: list[str], code: str
) -> None:
    for name, value in limits.items():
        monkeypatch.setenv(name, value)
    manifest = make_manifest(files_relative_paths_to_upload=files)

    job = requests.post(f"{api}/jobs", json={**manifest, "job_id": "via-api"}, timeout=30)
    upload = put_upload(api, upload_body(files))

    assert (job.status_code, job.json()["error"]) == (400, code)
    assert (upload.status_code, upload.json()["error"]) == (400, code)
    assert stack.s3().list_objects_v2(Bucket=stack.bucket, Prefix="manifests/")["KeyCount"] == 0
    assert intake_error(stack, "via-s3", manifest) == code


def test_as_many_files_as_max_manifest_files_allows_are_accepted(
    api: str, stack: LocalStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MAX_MANIFEST_FILES", "2")
    response = requests.post(f"{api}/jobs", json=make_manifest(files_relative_paths_to_upload=["a", "b"]), timeout=30)
    assert response.status_code == 202, response.text


# -- GET /openapi.json ----------------------------------------------------------------------------


def test_the_openapi_document_lists_the_routes_and_the_request_schema(api: str) -> None:
    document = requests.get(f"{api}/openapi.json", timeout=30).json()

    assert set(document["paths"]) >= {"/upload/images/{net_id}", "/jobs", "/jobs/{job_id}"}
    assert "put" in document["paths"]["/upload/images/{net_id}"]
    schema = document["components"]["schemas"]["UploadRequest"]
    assert set(schema["required"]) == {"central_hub_project_id", "accession_id", "scan_id", "resource_id", "files"}
    assert "JobRequest" in document["components"]["schemas"]


def test_the_exported_openapi_file_is_current(api: str) -> None:
    served = requests.get(f"{api}/openapi.json", timeout=30).json()
    exported = json.loads((ROOT / "functions" / "upload_api" / "openapi.json").read_text())
    assert exported == served, "run `make openapi` to refresh functions/upload_api/openapi.json"


def test_submitting_an_unfinished_job_again_resumes_it(api: str, stack: LocalStack) -> None:
    body = {**make_manifest(files_relative_paths_to_upload=["a.nii", "b.nii"]), "job_id": "resume-me"}
    stack.put_image("net-1", "a.nii", b"a")
    requests.post(f"{api}/jobs", json=body, timeout=30)
    stack.drain()
    assert requests.get(f"{api}/jobs/resume-me", timeout=30).json()["status"] == "failed"  # b.nii was missing

    stack.put_image("net-1", "b.nii", b"b")
    again = requests.post(f"{api}/jobs", json=body, timeout=30)
    assert again.status_code == 202
    assert again.json()["status"] == "resumed"
    resumed = requests.get(f"{api}/jobs/resume-me", timeout=30)
    assert resumed.status_code == 202, "the previous run's result is not the resumed job's answer"
    stack.drain()

    assert requests.get(f"{api}/jobs/resume-me", timeout=30).json()["status"] == "succeeded"


def test_a_finished_job_lists_its_problem_files_page_by_page(api: str, stack: LocalStack) -> None:
    present = [f"ok/{i:02d}.nii" for i in range(5)]
    missing_later = [f"bad/{i:02d}.nii" for i in range(25)]
    for path in present:
        stack.put_image("net-1", path, path.encode())
    for path in missing_later:
        stack.xnat.add_file(DEMO_PROJECT, DEMO_ACCESSION, "1", "NIFTI", path, b"someone else's")
        stack.put_image("net-1", path, path.encode())
    requests.post(
        f"{api}/jobs",
        json={**make_manifest(files_relative_paths_to_upload=present + missing_later), "job_id": "paged"},
        timeout=30,
    )
    stack.drain()

    pages, offset = [], 0
    while offset is not None:
        page = requests.get(f"{api}/jobs/paged", params={"offset": offset, "limit": 10}, timeout=30).json()
        assert page["status"] == "partial" and page["files_matching"] == 25
        pages.append([f["path"] for f in page["files"]])
        offset = page["next_offset"]

    assert [len(p) for p in pages] == [10, 10, 5]
    assert [path for page in pages for path in page] == missing_later, "every problem file once, in order"


# -- answers stay small whatever the manifest quotes -------------------------------------------------

ONE_MB = 1_000_000


def test_a_status_stays_under_1_mb_when_the_refusal_quotes_a_megabyte_field_name(api: str, stack: LocalStack) -> None:
    manifest = make_manifest(files_relative_paths_to_upload=["a.nii"])
    manifest["x" * 1_500_000] = 1  # an unknown field: refused, and the refusal names it
    stack.put_manifest("huge-field", manifest)
    stack.drain()

    response = requests.get(f"{api}/jobs/huge-field", timeout=30)

    assert response.status_code == 200 and len(response.content) < ONE_MB
    assert response.json()["error"]["code"] == "invalid_manifest"
    assert len(json.dumps(stack.read_result("huge-field")["error"])) < 10_000, "the stored refusal is short too"


def test_a_status_stays_under_1_mb_with_a_megabyte_path_and_says_what_it_clipped(api: str, stack: LocalStack) -> None:
    long_path = "a/" * 600_000 + "x.nii"
    stack.put_manifest("long-path", make_manifest(files_relative_paths_to_upload=[long_path]))
    stack.drain()

    response = requests.get(f"{api}/jobs/long-path", timeout=30)

    assert response.status_code == 200 and len(response.content) < ONE_MB
    (entry,) = response.json()["files"]
    assert entry["status"] == "skipped" and entry["clipped"] is True  # refused by the schema: not attempted
    assert entry["path"].startswith("a/a/") and "more characters" in entry["path"]
    assert stack.read_result("long-path")["files"][0]["path"] == long_path, "the full result keeps it whole"


def test_a_400_quotes_a_megabyte_field_name_clipped(api: str) -> None:
    body = {**make_manifest(files_relative_paths_to_upload=["a.nii"]), "y" * 2_000_000: 1}

    response = requests.post(f"{api}/jobs", json=body, timeout=60)

    assert response.status_code == 400 and len(response.content) < 10_000
