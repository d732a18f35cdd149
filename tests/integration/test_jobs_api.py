"""The read side of the jobs ledger over real HTTP: `GET /jobs` lists jobs from the ledger, newest first
and page by page; `GET /jobs/{id}` and the upload route's wait answer from the ledger item instead of
reading (or polling) the result in S3. S3 reads are counted on the very client the API uses."""

from __future__ import annotations

import threading
from typing import Any

import pytest
import requests

from devserver.stack import DEMO_ACCESSION, DEMO_PROJECT, LocalStack
from tests.integration.conftest import make_manifest
from xnat_upload import Settings
from xnat_upload.job.ledger import JobRecord, ledger_for
from xnat_upload.store import JobStore

ONE_MB = 1_000_000
UPLOAD = {"central_hub_project_id": "CHP-001", "accession_id": "ACC0001", "scan_id": "1", "resource_id": "NIFTI"}


@pytest.fixture(autouse=True)
def _fresh_ledger_client() -> None:
    ledger_for.cache_clear()  # each test's moto server state, each test's environment


class S3Reads:
    """Every read of a job's result (`JobStore.read_result`, whichever S3 client it goes through), with
    the thread that made it: the API's own threads, or the pollers standing in for the worker."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls: list[tuple[str, str]] = []
        original = JobStore.read_result

        def read_result(store: JobStore, job_id: str) -> dict[str, Any] | None:
            self.calls.append((store.settings.results_key(job_id), threading.current_thread().name))
            return original(store, job_id)

        monkeypatch.setattr(JobStore, "read_result", read_result)

    def of(self, key: str, *, by_api: bool = False) -> int:
        """Reads of `key`; with `by_api`, only the API's (not the worker's pollers')."""
        return sum(1 for k, thread in self.calls if k == key and not (by_api and "poller" in thread))


@pytest.fixture
def s3_reads(stack: LocalStack, monkeypatch: pytest.MonkeyPatch) -> S3Reads:
    return S3Reads(monkeypatch)


def list_all(api: str, route: str = "/jobs", **params: Any) -> list[list[dict[str, Any]]]:
    """Every page of GET /jobs (or a net's own listing) with these filters, following `next` to the end."""
    pages: list[list[dict[str, Any]]] = []
    token = None
    while True:
        response = requests.get(f"{api}{route}", params={**params, **({"next": token} if token else {})}, timeout=30)
        assert response.status_code == 200, response.text
        body = response.json()
        assert set(body) == {"jobs", "next"}
        pages.append(body["jobs"])
        token = body["next"]
        if token is None:
            return pages
        assert len(pages) < 100, "the pages never end"


# -- GET /jobs ----------------------------------------------------------------------------------------


def test_get_jobs_lists_exactly_the_failed_jobs_of_a_mixed_run_newest_first_across_pages(
    api: str, stack: LocalStack
) -> None:
    stack.put_image("net-1", "ct.nii", b"ct")
    stack.put_image("net-1", "seg.nii", b"our segmentation")
    # XNAT holds another seg.nii: a job asking for ct.nii and seg.nii (exist_ok false) ends partial.
    stack.xnat.add_file(DEMO_PROJECT, DEMO_ACCESSION, "1", "NIFTI", "seg.nii", b"someone else's")
    kinds = {"succeeded": [], "partial": [], "failed": []}  # type: dict[str, list[str]]
    for index in range(54):
        kind = ("succeeded", "failed", "partial")[index % 3]
        job_id = f"mixed-{index:02d}-{kind}"
        files = {"succeeded": ["ct.nii"], "partial": ["ct.nii", "seg.nii"], "failed": ["not-in-s3.nii"]}[kind]
        stack.put_manifest(job_id, make_manifest(files_relative_paths_to_upload=files))
        kinds[kind].append(job_id)
    stack.drain()

    pages = list_all(api, status="failed", limit=4)

    listed = [job for page in pages for job in page]
    assert len(pages) == 5 and all(len(page) <= 4 for page in pages)
    assert sorted(job["job_id"] for job in listed) == sorted(kinds["failed"]), "each failed job once, no other"
    assert {(job["state"], job["status"]) for job in listed} == {("finished", "failed")}
    assert [job["submitted_at"] for job in listed] == sorted((job["submitted_at"] for job in listed), reverse=True)
    failed = listed[0]
    assert failed["error"]["code"] == "object_not_found" and failed["counts"] == {"missing": 1}
    assert failed["files_total"] == 1 and failed["files_done"] == 0 and "updated_at" in failed
    for status in ("succeeded", "partial"):
        found = {job["job_id"] for page in list_all(api, status=status, limit=7) for job in page}
        assert found == set(kinds[status])
    everything = [job for page in list_all(api, limit=10) for job in page]
    assert len(everything) == 54
    assert [job["submitted_at"] for job in everything] == sorted((j["submitted_at"] for j in everything), reverse=True)


def test_get_jobs_filters_by_state_and_submission_time(api: str, stack: LocalStack) -> None:
    stack.put_image("net-1", "ct.nii", b"ct")
    stack.put_manifest("early", make_manifest(files_relative_paths_to_upload=["ct.nii"]))
    stack.drain()
    cutoff = stack.read_job("early")["updated_at"]  # type: ignore[index]
    stack.put_manifest("late", make_manifest(files_relative_paths_to_upload=["ct.nii"], scan_id="2"))
    assert stack.intake is not None
    while stack.intake.poll_once():  # the intake queues it; no worker runs
        pass

    queued = requests.get(f"{api}/jobs", params={"state": "queued"}, timeout=30).json()
    finished = requests.get(f"{api}/jobs", params={"state": "finished"}, timeout=30).json()
    recent = requests.get(f"{api}/jobs", params={"since": cutoff}, timeout=30).json()
    in_another_zone = requests.get(f"{api}/jobs", params={"since": "2000-01-01T02:00:00+02:00"}, timeout=30).json()

    assert [job["job_id"] for job in queued["jobs"]] == ["late"] and "status" not in queued["jobs"][0]
    assert [job["job_id"] for job in finished["jobs"]] == ["early"]
    assert [job["job_id"] for job in recent["jobs"]] == ["late"]
    assert [job["job_id"] for job in in_another_zone["jobs"]] == ["late", "early"]


@pytest.mark.parametrize(
    "params",
    [
        {"next": "bm90LWEtdG9rZW4"},  # base64 of "not-a-token"
        {"since": "2026-02-31T00:00:00Z"},  # matches the pattern; no such day
        {"since": "yesterday"},
        {"status": "running"},
        {"state": "done"},
        {"limit": "0"},
        {"limit": "1001"},
    ],
    ids=["bad-token", "no-such-day", "since-not-iso", "status-not-an-end", "unknown-state", "limit-0", "limit-1001"],
)
def test_get_jobs_refuses_what_it_cannot_answer_with_400(api: str, params: dict[str, str]) -> None:
    response = requests.get(f"{api}/jobs", params=params, timeout=30)
    assert response.status_code == 400, response.text
    assert response.json()["error"] == "invalid_request"


def test_a_page_token_of_another_listing_is_400(api: str, stack: LocalStack) -> None:
    ledger = ledger_for(Settings.from_env())
    for index in range(3):
        ledger.open(JobRecord(f"t{index}", "v1", state="finished", status="failed"))
    token = requests.get(f"{api}/jobs", params={"status": "failed", "limit": 1}, timeout=30).json()["next"]
    assert token is not None

    response = requests.get(f"{api}/jobs", params={"next": token, "limit": 1}, timeout=30)  # without the filter

    assert response.status_code == 400 and response.json()["error"] == "invalid_request"


def test_a_nets_own_route_lists_only_that_nets_jobs_across_pages(api: str, stack: LocalStack) -> None:
    ledger = ledger_for(Settings.from_env())
    for index in range(12):  # interleaved, so that every page of the ledger holds both nets
        net = "net-a" if index % 3 else "net-b"
        submitted = f"2026-12-06T10:00:{index:02d}.000+00:00"
        ledger.open(JobRecord(f"{net}-{index}", "v1", net_id=net, state="finished", status="succeeded",
                              submitted_at=submitted))  # fmt: skip

    pages = list_all(api, limit=2, route="/nets/net-b/jobs")

    listed = [job["job_id"] for page in pages for job in page]
    assert listed == ["net-b-9", "net-b-6", "net-b-3", "net-b-0"]
    assert all(len(page) <= 2 for page in pages)
    assert requests.get(f"{api}/nets/net-c/jobs", timeout=30).json() == {"jobs": [], "next": None}


def test_a_page_of_jobs_stays_under_1_mb_and_pages_on_where_it_stopped(api: str, stack: LocalStack) -> None:
    ledger = ledger_for(Settings.from_env())
    long = "x" * 255
    for index in range(1000):  # jobs with every identifier as long as a manifest allows, and a long error
        ledger.open(
            JobRecord(
                f"big-{index:04d}-{long[:100]}",
                "v" * 32,
                state="finished",
                status="failed",
                net_id=long,
                xnat={"project": long, "session": long, "scan": long, "resource": long},
                submitted_by="arn:aws:sts::123456789012:assumed-role/" + long,
                error={"code": "xnat_error", "message": long * 8},
            )
        )

    first = requests.get(f"{api}/jobs", params={"limit": 1000}, timeout=60)
    body = first.json()
    assert first.status_code == 200 and len(first.content) < ONE_MB
    assert 0 < len(body["jobs"]) < 1000 and body["next"] is not None
    rest = list_all(api, limit=1000, next=body["next"])
    ids = [job["job_id"] for job in body["jobs"]] + [job["job_id"] for page in rest for job in page]
    assert len(ids) == len(set(ids)) == 1000, "every job once: the next page starts where this one stopped"


# -- GET /jobs/{id} -------------------------------------------------------------------------------------


def test_a_finished_job_of_100000_files_answers_from_the_ledger_without_reading_its_result(
    api: str, stack: LocalStack, s3_reads: S3Reads
) -> None:
    put = stack.s3().put_object(Bucket=stack.bucket, Key="manifests/huge.json", Body=b"{}")  # its version
    version = put["VersionId"]
    ledger = ledger_for(Settings.from_env())
    files = 100_000
    ledger.open(JobRecord("huge", version, files_total=files, counts={"pending": files}, submitted_by="me"))
    ledger.update("huge", version, 0, state="running", started_at="2026-12-06T10:00:00.000+00:00")
    ledger.finish(
        "huge", version, 3,
        status="succeeded", counts={"uploaded": files}, files_total=files, files_done=files, files_failed=0,
        bytes_total=files * 1000, bytes_done=files * 1000, result_key="results/huge.json",
        started_at="2026-12-06T10:00:00.000+00:00", finished_at="2026-12-06T10:20:00.000+00:00", invocations=4,
        upload_mode="zip",
    )  # fmt: skip
    # A result no reader could parse: an answer that read it could not be this one.
    stack.s3().put_object(Bucket=stack.bucket, Key="results/huge.json", Body=b"\x00 not JSON " * 1000)

    response = requests.get(f"{api}/jobs/huge", timeout=30)

    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["status"], body["state"], body["counts"]) == ("succeeded", "finished", {"uploaded": files})
    assert (body["files_total"], body["files_done"], body["bytes_done"]) == (files, files, files * 1000)
    assert (body["invocations"], body["upload_mode"], body["duration_seconds"]) == (4, "zip", 1200.0)
    assert body["submitted_by"] == "me" and body["result_location"] == f"s3://{stack.bucket}/results/huge.json"
    assert (body["files_filter"], body["files_matching"], body["files"], body["next_offset"]) == ("problems", 0, [],
                                                                                                   None)  # fmt: skip
    assert s3_reads.of("results/huge.json") == 0, "the result was not read"


def test_a_finished_job_with_problems_reads_its_page_of_files_from_the_result(
    api: str, stack: LocalStack, s3_reads: S3Reads
) -> None:
    stack.put_image("net-1", "ct.nii", b"ct")
    stack.put_image("net-1", "seg.nii", b"ours")
    stack.xnat.add_file(DEMO_PROJECT, DEMO_ACCESSION, "1", "NIFTI", "seg.nii", b"theirs")
    stack.put_manifest("mixed", make_manifest(files_relative_paths_to_upload=["ct.nii", "seg.nii"]))
    stack.drain()
    before = s3_reads.of("results/mixed.json")

    body = requests.get(f"{api}/jobs/mixed", timeout=30).json()

    assert (body["status"], body["files_total"], body["files_done"]) == ("partial", 2, 1)
    assert [(f["path"], f["status"]) for f in body["files"]] == [("seg.nii", "already_exists")]
    assert s3_reads.of("results/mixed.json") == before + 1, "one read, for the page of problem files"


# -- the upload route's wait ----------------------------------------------------------------------------


def test_the_upload_route_waits_on_the_ledger_item_and_reads_the_result_once(
    running_api: str, stack: LocalStack, s3_reads: S3Reads
) -> None:
    stack.put_image("net-1", "slow.nii", b"slow")
    stack.xnat.set_delay(2.0, method="PUT")  # the job takes a few seconds: the route polls many times meanwhile
    ledger_reads: list[str] = []
    ledger_client = ledger_for(Settings.from_env())._client  # type: ignore[attr-defined]
    ledger_client.meta.events.register(
        "before-call.dynamodb.GetItem", lambda **_: ledger_reads.append(threading.current_thread().name)
    )

    response = requests.put(
        f"{running_api}/upload/images/net-1",
        json={**UPLOAD, "files": ["slow.nii"]},
        timeout=60,
    )

    assert response.status_code == 200, response.text
    (result_key,) = {key for key, _ in s3_reads.calls if key.startswith("results/sync-") and key.endswith(".json")}
    assert s3_reads.of(result_key, by_api=True) == 1, "the route read the result once, when the ledger said finished"
    assert len([thread for thread in ledger_reads if "poller" not in thread]) >= 5, "it polled the ledger meanwhile"
