"""The XNAT emulator over real HTTP: every row of the contract it enforces, and its fault hooks."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import subprocess
import sys
import threading
import zipfile
from collections.abc import Iterator
from http.client import HTTPConnection
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests

from devserver.xnat_emulator import XnatEmulator
from tests.processes import popen

ROOT = Path(__file__).resolve().parents[2]
P, SUBJ, EXP = "PRJ001", "SUBJ001", "ACC0001"
BASIC = "Basic " + base64.b64encode(b"admin:admin").decode()


@pytest.fixture
def xnat() -> Iterator[XnatEmulator]:
    with XnatEmulator() as emulator:
        emulator.add_project(P, secondary_id="CHP-001", name="Demo")
        emulator.add_project("PRJ002", secondary_id="chp-001")
        emulator.add_experiment(P, SUBJ, EXP)
        yield emulator


@pytest.fixture
def http(xnat: XnatEmulator) -> Iterator[requests.Session]:
    """A logged-in session (cookie), as the service's client uses it."""
    session = requests.Session()
    response = session.post(xnat.url + "/data/JSESSION", auth=("admin", "admin"), timeout=5)
    assert response.status_code == 200
    yield session
    session.close()


def scan_url(xnat: XnatEmulator, scan: str = "1", *rest: str) -> str:
    return "/".join([xnat.url, "data/projects", P, "subjects", SUBJ, "experiments", EXP, "scans", scan, *rest])


def file_url(xnat: XnatEmulator, path: str, resource: str = "NIFTI", scan: str = "1") -> str:
    return scan_url(xnat, scan, "resources", resource, "files", path)


def put_file(http: requests.Session, url: str, data: bytes, **params: str) -> requests.Response:
    return http.put(url, params={"inbody": "true", **params}, data=data, timeout=5)


def listing(http: requests.Session, xnat: XnatEmulator, resource: str = "NIFTI") -> dict[str, dict]:
    response = http.get(scan_url(xnat, "1", "resources", resource, "files"), params={"format": "json"}, timeout=5)
    assert response.status_code == 200
    rows = response.json()["ResultSet"]["Result"]
    return {row["URI"].split("/files/", 1)[1]: row for row in rows}


def raw_put(xnat: XnatEmulator, url: str, data: bytes) -> int:
    """A PUT with the path sent exactly as given (requests would resolve `..` segments)."""
    parts = urlsplit(url)
    connection = HTTPConnection(parts.hostname, parts.port, timeout=5)
    try:
        connection.request("PUT", parts.path + "?" + parts.query, body=data, headers={"Authorization": BASIC})
        return connection.getresponse().status
    finally:
        connection.close()


def make_zip(entries: dict[str, bytes], compression: int = zipfile.ZIP_DEFLATED) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=compression) as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
    return buffer.getvalue()


# -- sessions ------------------------------------------------------------------------------------


def test_login_sets_cookie_and_logout_ends_the_session(xnat: XnatEmulator) -> None:
    session = requests.Session()
    response = session.post(xnat.url + "/data/JSESSION", auth=("admin", "admin"), timeout=5)
    assert response.status_code == 200
    assert response.text == session.cookies["JSESSIONID"]
    assert "HttpOnly" in response.headers["Set-Cookie"]
    assert session.get(xnat.url + "/data/projects", params={"format": "json"}, timeout=5).status_code == 200
    assert (xnat.logins, xnat.active_sessions) == (1, 1)

    assert session.delete(xnat.url + "/data/JSESSION", timeout=5).status_code == 200
    assert (xnat.logouts, xnat.active_sessions) == (1, 0)
    assert session.get(xnat.url + "/data/projects", params={"format": "json"}, timeout=5).status_code == 401


def test_bad_or_missing_credentials_get_401_html(xnat: XnatEmulator) -> None:
    response = requests.post(xnat.url + "/data/JSESSION", auth=("admin", "wrong"), timeout=5)
    assert response.status_code == 401
    assert "<h3>Login attempt failed. Please try again.</h3>" in response.text
    assert response.headers["Content-Type"].startswith("text/html")
    response = requests.get(xnat.url + "/data/projects", params={"format": "json"}, timeout=5)
    assert response.status_code == 401
    bogus = requests.get(xnat.url + "/data/projects", cookies={"JSESSIONID": "NOPE"}, timeout=5)
    assert bogus.status_code == 401
    assert xnat.logins == 0


def test_basic_auth_on_every_request_opens_a_session_each_time(xnat: XnatEmulator) -> None:
    for _ in range(3):
        assert requests.get(xnat.url + "/data/projects", auth=("admin", "admin"), timeout=5).status_code == 200
    assert (xnat.logins, xnat.active_sessions) == (3, 3)


def test_expired_session_is_401_until_relogin(xnat: XnatEmulator, http: requests.Session) -> None:
    xnat.expire_sessions()
    assert http.get(xnat.url + "/data/projects", timeout=5).status_code == 401
    http.post(xnat.url + "/data/JSESSION", auth=("admin", "admin"), timeout=5)
    assert http.get(xnat.url + "/data/projects", timeout=5).status_code == 200
    expired = xnat.requests_log[-3]
    assert (expired.method, expired.status, expired.has_cookie) == ("GET", 401, True)


# -- lookups -------------------------------------------------------------------------------------


def test_projects_listing_and_exact_secondary_id_filter(xnat: XnatEmulator, http: requests.Session) -> None:
    document = http.get(xnat.url + "/data/projects", params={"format": "json"}, timeout=5).json()
    assert document["ResultSet"]["totalRecords"] == "2"
    row = next(r for r in document["ResultSet"]["Result"] if r["ID"] == P)
    assert row == {
        "ID": P,
        "secondary_ID": "CHP-001",
        "name": "Demo",
        "description": "",
        "pi_firstname": "",
        "pi_lastname": "",
        "URI": "/data/projects/PRJ001",
    }
    filtered = http.get(xnat.url + "/data/projects", params={"format": "json", "secondary_ID": "CHP-001"}, timeout=5)
    assert [r["ID"] for r in filtered.json()["ResultSet"]["Result"]] == [P]
    assert filtered.json()["ResultSet"]["totalRecords"] == "1"
    none = http.get(xnat.url + "/data/projects", params={"format": "json", "secondary_ID": "CHP"}, timeout=5)
    assert none.json()["ResultSet"] == {"Result": [], "totalRecords": "0"}


def test_experiment_by_label_id_or_subject_path(xnat: XnatEmulator, http: requests.Session) -> None:
    url = f"{xnat.url}/data/projects/{P}/experiments/{EXP}"
    document = http.get(url, params={"format": "json"}, timeout=5).json()
    item = document["items"][0]
    assert item["meta"] == {"xsi:type": "xnat:mrSessionData", "isHistory": False}
    assert item["children"] == []
    fields = item["data_fields"]
    assert fields == {"ID": "XNAT_E00001", "label": EXP, "project": P, "subject_ID": "XNAT_S00001"}
    by_id = http.get(f"{xnat.url}/data/projects/{P}/experiments/XNAT_E00001", params={"format": "json"}, timeout=5)
    assert by_id.json() == document
    for subject in ("XNAT_S00001", SUBJ):
        via = f"{xnat.url}/data/projects/{P}/subjects/{subject}/experiments/{EXP}"
        assert http.get(via, params={"format": "json"}, timeout=5).json() == document


def test_unknown_project_experiment_or_subject_is_404_html(xnat: XnatEmulator, http: requests.Session) -> None:
    for path in (
        f"/data/projects/{P}/experiments/ACC9999",
        f"/data/projects/NOPE/experiments/{EXP}",
        f"/data/projects/PRJ002/experiments/{EXP}",
        f"/data/projects/{P}/subjects/OTHER/experiments/{EXP}",
        "/data/nothing/here",
    ):
        response = http.get(xnat.url + path, params={"format": "json"}, timeout=5)
        assert response.status_code == 404, path
        assert response.text.startswith("<html><body><h3>")
        assert response.headers["Content-Type"].startswith("text/html")


def test_wrong_method_is_405(xnat: XnatEmulator, http: requests.Session) -> None:
    assert http.delete(xnat.url + "/data/projects", timeout=5).status_code == 405


# -- scans and resources -------------------------------------------------------------------------


def test_scan_put_rules(xnat: XnatEmulator, http: requests.Session) -> None:
    assert http.put(scan_url(xnat), timeout=5).status_code == 417
    assert http.put(scan_url(xnat), params={"xsiType": "xnat:imageScanData"}, timeout=5).status_code == 400
    created = http.put(scan_url(xnat), params={"xsiType": "xnat:mrScanData"}, timeout=5)
    assert (created.status_code, created.content) == (200, b"")
    assert xnat.scan_type(P, EXP, "1") == "xnat:mrScanData"
    assert http.put(scan_url(xnat), params={"xsiType": "xnat:mrScanData"}, timeout=5).status_code == 200
    assert http.put(scan_url(xnat), timeout=5).status_code == 200
    assert http.put(scan_url(xnat), params={"xsiType": "xnat:ctScanData"}, timeout=5).status_code == 409
    assert xnat.scan_type(P, EXP, "1") == "xnat:mrScanData"
    # by experiment and subject ID, as the client addresses it
    by_id = f"{xnat.url}/data/projects/{P}/subjects/XNAT_S00001/experiments/XNAT_E00001/scans/2"
    assert http.put(by_id, params={"xsiType": "xnat:ctScanData"}, timeout=5).status_code == 200
    assert xnat.scan_type(P, EXP, "2") == "xnat:ctScanData"
    wrong_subject = f"{xnat.url}/data/projects/{P}/subjects/NOPE/experiments/{EXP}/scans/3"
    assert http.put(wrong_subject, params={"xsiType": "xnat:mrScanData"}, timeout=5).status_code == 404


def test_resource_put_and_listing(xnat: XnatEmulator, http: requests.Session) -> None:
    assert http.put(scan_url(xnat, "1", "resources", "NIFTI"), timeout=5).status_code == 404  # no scan
    xnat.add_scan(P, EXP, "1")
    created = http.put(scan_url(xnat, "1", "resources", "NIFTI"), params={"format": "NIFTI"}, timeout=5)
    assert (created.status_code, created.content) == (200, b"")
    assert http.put(scan_url(xnat, "1", "resources", "NIFTI"), timeout=5).status_code == 409
    assert xnat.resource_exists(P, EXP, "1", "NIFTI")
    xnat.add_file(P, EXP, "1", "NIFTI", "a.nii", b"12345")
    rows = http.get(scan_url(xnat, "1", "resources"), params={"format": "json"}, timeout=5).json()["ResultSet"]
    (row,) = rows["Result"]
    assert row["label"] == "NIFTI" and row["format"] == "NIFTI"
    assert (row["file_count"], row["file_size"], row["element_name"]) == ("1", "5", "xnat:resourceCatalog")
    assert row["xnat_abstractresource_id"].isdigit()


# -- files ---------------------------------------------------------------------------------------


@pytest.fixture
def scan(xnat: XnatEmulator) -> None:
    xnat.add_scan(P, EXP, "1")


@pytest.mark.usefixtures("scan")
def test_file_put_requires_inbody(xnat: XnatEmulator, http: requests.Session) -> None:
    response = http.put(file_url(xnat, "a.nii"), data=b"abc", timeout=5)
    assert response.status_code == 400
    assert "didn't provide any data" in response.text
    assert put_file(http, file_url(xnat, "a.nii"), b"abc", inbody="false").status_code == 400
    assert put_file(http, file_url(xnat, "a.nii"), b"abc", inbody="no").status_code == 200  # any other value is true


@pytest.mark.usefixtures("scan")
def test_chunked_or_empty_body_is_500_unless_zip(xnat: XnatEmulator, http: requests.Session) -> None:
    assert put_file(http, file_url(xnat, "a.nii"), b"").status_code == 500
    chunked = http.put(file_url(xnat, "a.nii"), params={"inbody": "true"}, data=iter([b"abc"]), timeout=5)
    assert chunked.status_code == 500
    assert "request entity size is -1" in chunked.text
    assert xnat.list_files(P, EXP, "1", "NIFTI") == {}
    archive = make_zip({"x/y.txt": b"streamed"})
    streamed = http.put(
        file_url(xnat, "batch.zip"),
        params={"inbody": "true", "extract": "true"},
        data=iter([archive[:10], archive[10:]]),
        headers={"Content-Type": "application/zip"},
        timeout=5,
    )
    assert streamed.status_code == 200
    assert xnat.list_files(P, EXP, "1", "NIFTI") == {"x/y.txt": b"streamed"}


def test_file_put_into_unknown_scan_is_404(xnat: XnatEmulator, http: requests.Session) -> None:
    assert put_file(http, file_url(xnat, "a.nii", scan="9"), b"abc").status_code == 404


@pytest.mark.usefixtures("scan")
def test_file_put_creates_resource_and_stores_bytes(xnat: XnatEmulator, http: requests.Session) -> None:
    response = put_file(http, file_url(xnat, "sub/dir/a.nii"), b"hello")
    assert (response.status_code, response.content) == (200, b"")
    assert xnat.resource_exists(P, EXP, "1", "NIFTI")
    assert xnat.list_files(P, EXP, "1", "NIFTI") == {"sub/dir/a.nii": b"hello"}
    download = http.get(file_url(xnat, "sub/dir/a.nii"), timeout=5)
    assert (download.status_code, download.content) == (200, b"hello")
    assert http.get(file_url(xnat, "missing.nii"), timeout=5).status_code == 404


@pytest.mark.usefixtures("scan")
def test_existing_file_without_overwrite_is_200_duplicates_and_unchanged(
    xnat: XnatEmulator, http: requests.Session
) -> None:
    assert put_file(http, file_url(xnat, "a.nii"), b"old").status_code == 200
    response = put_file(http, file_url(xnat, "a.nii"), b"new!")
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/html")
    assert json.loads(response.text) == {"duplicates": ["a.nii"]}
    assert xnat.get_file(P, EXP, "1", "NIFTI", "a.nii") == b"old"
    assert listing(http, xnat)["a.nii"]["digest"] == hashlib.md5(b"old").hexdigest()


@pytest.mark.usefixtures("scan")
def test_overwrite_replaces_and_recomputes_digest(xnat: XnatEmulator, http: requests.Session) -> None:
    put_file(http, file_url(xnat, "a.nii"), b"old")
    before = listing(http, xnat)["a.nii"]["digest"]
    response = put_file(http, file_url(xnat, "a.nii"), b"new!", overwrite="yes")  # any value but false/0
    assert (response.status_code, response.content) == (200, b"")
    after = listing(http, xnat)["a.nii"]
    assert after["digest"] == hashlib.md5(b"new!").hexdigest() != before
    assert after["Size"] == "4"
    assert xnat.get_file(P, EXP, "1", "NIFTI", "a.nii") == b"new!"


@pytest.mark.usefixtures("scan")
def test_path_decoded_only_with_percent20_or_2b(xnat: XnatEmulator, http: requests.Session) -> None:
    assert put_file(http, file_url(xnat, "my%20scan%2Bv2.nii"), b"1").status_code == 200
    assert put_file(http, file_url(xnat, "a%23b.nii"), b"2").status_code == 200
    assert sorted(xnat.list_files(P, EXP, "1", "NIFTI")) == ["a%23b.nii", "my scan+v2.nii"]
    for bad in ("a/../b.nii", "a%20/../b.nii", "a//b.nii", "./b.nii"):
        assert raw_put(xnat, file_url(xnat, bad) + "?inbody=true", b"3") == 400, bad


@pytest.mark.usefixtures("scan")
def test_file_listing_envelope(xnat: XnatEmulator, http: requests.Session) -> None:
    put_file(http, file_url(xnat, "a/seg.nii"), b"first")
    put_file(http, file_url(xnat, "b/seg.nii"), b"second")
    response = http.get(scan_url(xnat, "1", "resources", "NIFTI", "files"), params={"format": "json"}, timeout=5)
    document = response.json()
    assert set(document["ResultSet"]) == {"Result", "title"}
    assert document["ResultSet"]["title"] == "Files"
    rows = {row["URI"].split("/files/", 1)[1]: row for row in document["ResultSet"]["Result"]}
    assert set(rows) == {"a/seg.nii", "b/seg.nii"}
    row = rows["a/seg.nii"]
    pk = row["cat_ID"]
    assert row == {
        "Name": "seg.nii",
        "Size": "5",
        "URI": f"/data/experiments/XNAT_E00001/scans/1/resources/{pk}/files/a/seg.nii",
        "collection": "NIFTI",
        "file_tags": "",
        "file_format": "",
        "file_content": "",
        "cat_ID": pk,
        "digest": hashlib.md5(b"first").hexdigest(),
    }
    assert all(isinstance(v, str) for r in rows.values() for v in r.values())
    # the listing URI itself can be fetched (experiment ID + resource primary key)
    assert http.get(xnat.url + row["URI"], timeout=5).content == b"first"
    unknown = http.get(scan_url(xnat, "1", "resources", "NOPE", "files"), params={"format": "json"}, timeout=5)
    assert unknown.status_code == 404


@pytest.mark.usefixtures("scan")
def test_delete_file(xnat: XnatEmulator, http: requests.Session) -> None:
    put_file(http, file_url(xnat, "a.nii"), b"x")
    assert http.delete(file_url(xnat, "a.nii"), timeout=5).status_code == 200
    assert xnat.list_files(P, EXP, "1", "NIFTI") == {}
    assert http.delete(file_url(xnat, "a.nii"), timeout=5).status_code == 404


class _HeldBody:
    """A request body with a known length that sends its first byte, then waits for `release`."""

    def __init__(self, data: bytes, release: threading.Event) -> None:
        self._data = data
        self._offset = 0
        self._release = release

    def __len__(self) -> int:
        return len(self._data)

    def read(self, size: int = -1) -> bytes:
        if self._offset == 1:
            assert self._release.wait(5)
        end = 1 if self._offset == 0 else len(self._data)
        chunk = self._data[self._offset : end]
        self._offset = end
        return chunk


@pytest.mark.usefixtures("scan")
def test_overlapping_puts_into_one_resource_conflict(xnat: XnatEmulator, http: requests.Session) -> None:
    xnat.add_resource(P, EXP, "1", "NIFTI")
    xnat.set_catalog_write_latency(0.05)
    release = threading.Event()
    results: dict[str, int] = {}

    def upload(name: str) -> None:
        body = _HeldBody(name.encode() * 100, release)
        results[name] = http.put(file_url(xnat, name), params={"inbody": "true"}, data=body, timeout=10).status_code

    threads = [threading.Thread(target=upload, args=(name,)) for name in ("a.nii", "b.nii")]
    for thread in threads:
        thread.start()
    assert xnat.wait_for_file_puts_in_flight(2)  # both took their catalog snapshot before either wrote it
    release.set()
    for thread in threads:
        thread.join(10)

    assert sorted(results.values()) == [200, 500]
    assert xnat.catalog_conflicts_count == 1
    assert xnat.max_concurrent_file_puts == 2
    loser = next(name for name, status in results.items() if status == 500)
    winner = next(name for name, status in results.items() if status == 200)
    assert set(listing(http, xnat)) == {winner}
    assert loser in xnat.disk_files(P, EXP, "1", "NIFTI")  # on disk, not catalogued
    conflict_log = [r for r in xnat.requests_log if r.status == 500]
    assert len(conflict_log) == 1

    retry = put_file(http, file_url(xnat, loser), loser.encode() * 100)
    assert (retry.status_code, retry.json()) == (200, {"duplicates": [loser]})
    assert set(listing(http, xnat)) == {winner}  # still missing

    retry = put_file(http, file_url(xnat, loser), loser.encode() * 100, overwrite="true")
    assert (retry.status_code, retry.content) == (200, b"")
    assert set(listing(http, xnat)) == {winner, loser}


@pytest.mark.usefixtures("scan")
def test_no_conflict_when_disabled(xnat: XnatEmulator, http: requests.Session) -> None:
    xnat.catalog_conflicts = False
    release = threading.Event()
    results: list[int] = []

    def upload(name: str) -> None:
        body = _HeldBody(b"0123456789", release)
        results.append(http.put(file_url(xnat, name), params={"inbody": "true"}, data=body, timeout=10).status_code)

    threads = [threading.Thread(target=upload, args=(name,)) for name in ("a.nii", "b.nii")]
    for thread in threads:
        thread.start()
    assert xnat.wait_for_file_puts_in_flight(2)
    release.set()
    for thread in threads:
        thread.join(10)
    assert results == [200, 200]
    assert set(xnat.list_files(P, EXP, "1", "NIFTI")) == {"a.nii", "b.nii"}


# -- archives ------------------------------------------------------------------------------------


@pytest.mark.usefixtures("scan")
def test_zip_extract_in_one_catalog_write_with_duplicates(xnat: XnatEmulator, http: requests.Session) -> None:
    xnat.add_file(P, EXP, "1", "NIFTI", "keep.nii", b"original")
    archive = make_zip({"keep.nii": b"replacement", "dir/a.nii": b"A", "dir/": b"", "empty.txt": b""})
    response = put_file(http, file_url(xnat, "batch.zip"), archive, extract="true")
    assert response.status_code == 200
    assert json.loads(response.text) == {"duplicates": ["keep.nii"]}
    assert xnat.list_files(P, EXP, "1", "NIFTI") == {"dir/a.nii": b"A", "empty.txt": b"", "keep.nii": b"original"}

    response = put_file(http, file_url(xnat, "batch.zip"), archive, extract="true", overwrite="true")
    assert (response.status_code, response.content) == (200, b"")
    assert xnat.get_file(P, EXP, "1", "NIFTI", "keep.nii") == b"replacement"

    stored = make_zip({"x.txt": b"1", "y.txt": b"2"}, zipfile.ZIP_STORED)
    put_file(http, file_url(xnat, "stored.zip", resource="OTHER"), stored, extract="1")
    assert xnat.list_files(P, EXP, "1", "OTHER") == {"x.txt": b"1", "y.txt": b"2"}


@pytest.mark.usefixtures("scan")
def test_zip_extract_is_one_catalog_write(xnat: XnatEmulator, http: requests.Session) -> None:
    xnat.add_resource(P, EXP, "1", "NIFTI")
    resource = xnat._find_resource(P, EXP, "1", "NIFTI")
    assert resource is not None
    before = resource.version
    archive = make_zip({"a": b"1", "b/c": b"2", "d": b"3"})
    assert put_file(http, file_url(xnat, "batch.ZAR"), archive, extract="t").status_code == 200
    assert resource.version == before + 1
    assert sorted(xnat.list_files(P, EXP, "1", "NIFTI")) == ["a", "b/c", "d"]


@pytest.mark.usefixtures("scan")
def test_zip_without_extract_is_stored_as_a_file(xnat: XnatEmulator, http: requests.Session) -> None:
    archive = make_zip({"a.txt": b"1"})
    assert put_file(http, file_url(xnat, "batch.zip"), archive).status_code == 200
    assert xnat.list_files(P, EXP, "1", "NIFTI") == {"batch.zip": archive}


class _Unseekable(io.RawIOBase):
    def __init__(self) -> None:
        self.data = bytearray()

    def writable(self) -> bool:
        return True

    def write(self, b) -> int:  # type: ignore[override]
        self.data += b
        return len(b)


@pytest.mark.usefixtures("scan")
def test_stored_zip_with_data_descriptor_is_refused(xnat: XnatEmulator, http: requests.Session) -> None:
    sink = _Unseekable()
    with zipfile.ZipFile(sink, "w", compression=zipfile.ZIP_STORED) as archive:  # unseekable: flag bit 3
        archive.writestr("a.txt", b"hello")
    response = put_file(http, file_url(xnat, "bad.zip"), bytes(sink.data), extract="true")
    assert response.status_code == 400
    assert "invalid zip" in response.text
    assert xnat.list_files(P, EXP, "1", "NIFTI") == {}


@pytest.mark.usefixtures("scan")
def test_zip_with_escaping_or_absolute_entries_is_refused(xnat: XnatEmulator, http: requests.Session) -> None:
    for name in ("../evil.txt", "/abs.txt"):
        response = put_file(http, file_url(xnat, "bad.zip"), make_zip({name: b"x"}), extract="true")
        assert response.status_code == 400, name
    assert put_file(http, file_url(xnat, "bad.zip"), b"not a zip", extract="true").status_code == 400
    assert xnat.disk_files(P, EXP, "1", "NIFTI") == {}


# -- faults --------------------------------------------------------------------------------------


@pytest.mark.usefixtures("scan")
def test_fail_next_answers_the_status_then_recovers(xnat: XnatEmulator, http: requests.Session) -> None:
    xnat.fail_next(503, times=2, method="PUT", path_contains="/files/", body="try later")
    for _ in range(2):
        response = put_file(http, file_url(xnat, "a.nii"), b"x" * 5000)
        assert response.status_code == 503
        assert "<h3>try later</h3>" in response.text
    assert http.get(xnat.url + "/data/projects", timeout=5).status_code == 200  # same pooled connection works
    assert put_file(http, file_url(xnat, "a.nii"), b"abc").status_code == 200
    assert xnat.count("PUT", "/files/") == 3
    assert [r.body_bytes for r in xnat.requests_log if r.method == "PUT"] == [5000, 5000, 3]


@pytest.mark.usefixtures("scan")
def test_drop_connection_mid_body(xnat: XnatEmulator, http: requests.Session) -> None:
    xnat.drop_connection_next(after_bytes=1024)
    with pytest.raises(requests.ConnectionError):
        put_file(http, file_url(xnat, "a.nii"), b"x" * 4_000_000)
    assert xnat.list_files(P, EXP, "1", "NIFTI") == {}
    dropped = [r for r in xnat.requests_log if r.method == "PUT"][-1]
    assert dropped.status == 0
    assert put_file(http, file_url(xnat, "a.nii"), b"x" * 2048).status_code == 200


def test_set_delay_triggers_client_timeout(xnat: XnatEmulator, http: requests.Session) -> None:
    xnat.set_delay(5, method="GET", path_contains="/data/projects")
    with pytest.raises(requests.Timeout):
        http.get(xnat.url + "/data/projects", timeout=(5, 0.2))
    xnat.clear_faults()
    assert http.get(xnat.url + "/data/projects", timeout=5).status_code == 200


def test_set_down_answers_503(xnat: XnatEmulator, http: requests.Session) -> None:
    xnat.set_down(True)
    assert http.get(xnat.url + "/data/projects", timeout=5).status_code == 503
    assert requests.post(xnat.url + "/data/JSESSION", auth=("admin", "admin"), timeout=5).status_code == 503
    xnat.set_down(False)
    assert http.get(xnat.url + "/data/projects", timeout=5).status_code == 200


def test_requests_log_and_count(xnat: XnatEmulator, http: requests.Session) -> None:
    http.get(xnat.url + "/data/projects/PRJ%2F001", params={"format": "json", "x": "a b"}, timeout=5)
    record = xnat.requests_log[-1]
    assert (record.method, record.path, record.status) == ("GET", "/data/projects/PRJ%2F001", 404)
    assert record.query == {"format": "json", "x": "a b"}
    assert xnat.count("POST", "JSESSION") == 1
    assert xnat.count() == 2


def test_delay_next_slows_only_the_next_matching_requests(xnat: XnatEmulator, http: requests.Session) -> None:
    xnat.delay_next(5, times=1, method="GET", path_contains="/data/projects")
    with pytest.raises(requests.Timeout):
        http.get(xnat.url + "/data/projects", timeout=(5, 0.2))
    assert http.get(xnat.url + "/data/projects", timeout=(5, 2)).status_code == 200


def test_on_request_runs_the_callback_after_skipping_and_for_times_matches(
    xnat: XnatEmulator, http: requests.Session
) -> None:
    seen: list[int] = []
    xnat.on_request(lambda: seen.append(xnat.count("GET", "/data/projects")), "GET", "/data/projects", times=2, skip=1)
    for _ in range(4):
        http.get(xnat.url + "/data/projects", timeout=5)
    assert seen == [1, 2], "runs before the request it matched is logged: after 1 and 2 earlier ones"


def test_expire_sessions_after_n_requests_makes_the_next_one_401(xnat: XnatEmulator, http: requests.Session) -> None:
    xnat.expire_sessions_after(2, method="GET")
    statuses = [http.get(xnat.url + "/data/projects", timeout=5).status_code for _ in range(3)]
    assert statuses == [200, 200, 401]
    assert xnat.active_sessions == 0


def test_session_ids_lists_every_issued_session(xnat: XnatEmulator, http: requests.Session) -> None:
    assert xnat.session_ids == [http.cookies["JSESSIONID"]]
    http.delete(xnat.url + "/data/JSESSION", timeout=5)
    assert xnat.session_ids == [http.cookies["JSESSIONID"]], "ended sessions stay listed"


def test_trickle_response_next_sends_the_answer_a_few_bytes_at_a_time(
    xnat: XnatEmulator, http: requests.Session
) -> None:
    import time

    xnat.trickle_response_next(200, times=1, method="GET", path_contains="/data/projects")
    started = time.monotonic()
    response = http.get(xnat.url + "/data/projects", params={"format": "json"}, timeout=(5, 0.5))
    elapsed = time.monotonic() - started

    assert response.status_code == 200 and response.json()["ResultSet"]["totalRecords"] == "2"
    size = len(response.content) + 100  # at least the headers came at the same pace
    assert elapsed >= size / 200 * 0.8, "the read timeout (0.5 s) never fired: every read made progress"
    started = time.monotonic()
    assert http.get(xnat.url + "/data/projects", timeout=5).status_code == 200
    assert time.monotonic() - started < size / 200 / 2, "only the next matching request trickles"


@pytest.mark.usefixtures("scan")
def test_read_body_slowly_next_reads_the_request_body_at_the_given_rate(
    xnat: XnatEmulator, http: requests.Session
) -> None:
    import time

    xnat.read_body_slowly_next(100_000, times=1)
    started = time.monotonic()
    assert put_file(http, file_url(xnat, "a.nii"), b"x" * 100_000).status_code == 200
    assert time.monotonic() - started >= 0.8
    assert xnat.list_files(P, EXP, "1", "NIFTI") == {"a.nii": b"x" * 100_000}


def test_a_throttled_request_does_not_outlive_the_emulator() -> None:
    import time

    emulator = XnatEmulator().start()
    emulator.trickle_response_next(1, method="POST")
    errors: list[BaseException] = []

    def login() -> None:
        try:
            requests.post(emulator.url + "/data/JSESSION", auth=("admin", "admin"), timeout=10)
        except requests.RequestException as exc:
            errors.append(exc)

    client = threading.Thread(target=login)
    client.start()
    for _ in range(500):  # the answer is logged just before it starts to trickle
        if emulator.count("POST"):
            break
        threading.Event().wait(0.01)
    started = time.monotonic()
    emulator.stop()
    client.join(timeout=5)
    assert not client.is_alive() and errors, "the client saw the connection end"
    assert time.monotonic() - started < 2


def test_echo_requests_in_errors_lists_headers_cookies_and_query(xnat: XnatEmulator, http: requests.Session) -> None:
    xnat.echo_requests_in_errors()
    response = http.get(xnat.url + "/data/projects/NOPE", params={"format": "json", "q": "1"}, timeout=5)
    assert response.status_code == 404
    session_id = http.cookies["JSESSIONID"]
    assert f"Cookie: JSESSIONID={session_id}" in response.text
    assert f"cookies: JSESSIONID={session_id}" in response.text
    assert "query: format=json&amp;q=1" in response.text
    failed_login = requests.post(xnat.url + "/data/JSESSION", auth=("admin", "wrong"), timeout=5)
    assert failed_login.status_code == 401 and "Authorization: Basic " in failed_login.text


def test_sso_login_page_answers_everything_with_a_login_page_and_a_cookie(xnat: XnatEmulator) -> None:
    xnat.sso_login_page()
    login = requests.post(xnat.url + "/data/JSESSION", auth=("admin", "admin"), timeout=5)
    assert login.status_code == 200 and 'type="password"' in login.text
    assert "JSESSIONID" in login.cookies
    assert xnat.logins == 0, "XNAT itself never saw the login"
    listing = requests.get(xnat.url + "/data/projects", params={"format": "json"}, cookies=login.cookies, timeout=5)
    assert listing.status_code == 200 and listing.text.startswith("<!DOCTYPE html>")
    xnat.sso_login_page(False)
    assert requests.post(xnat.url + "/data/JSESSION", auth=("admin", "admin"), timeout=5).text == xnat.session_ids[-1]


# -- process mode --------------------------------------------------------------------------------


def test_process_mode_serves_the_demo_seed() -> None:
    process = popen(
        [sys.executable, "-m", "devserver.xnat_emulator", "--port", "0", "--seed", "demo"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert line.startswith("XNAT emulator listening on http://127.0.0.1:")
        url = line.rsplit(" ", 1)[1].strip()
        response = requests.get(url + "/data/projects", params={"format": "json"}, auth=("admin", "admin"), timeout=5)
        rows = response.json()["ResultSet"]["Result"]
        assert [(r["ID"], r["secondary_ID"]) for r in rows] == [("PRJ001", "CHP-001")]
        experiment = requests.get(
            url + "/data/projects/PRJ001/experiments/ACC0001",
            params={"format": "json"},
            auth=("admin", "admin"),
            timeout=5,
        )
        assert experiment.status_code == 200
    finally:
        process.terminate()
        assert process.wait(timeout=10) == 0


def test_on_request_can_fire_once_part_of_the_body_has_arrived(xnat: XnatEmulator, http: requests.Session) -> None:
    xnat.add_resource(P, EXP, "1", "NIFTI")
    received: list[int] = []
    xnat.on_request(lambda: received.append(xnat.count("PUT", "/files/")), "PUT", "/files/", after_body_bytes=1000)

    assert put_file(http, file_url(xnat, "a.nii"), b"x" * 5000).status_code == 200

    assert received == [0], "fired once, while the PUT was still being read (not yet logged)"
    assert xnat.list_files(P, EXP, "1", "NIFTI") == {"a.nii": b"x" * 5000}


def test_with_checksums_off_listings_carry_no_digest(xnat: XnatEmulator, http: requests.Session) -> None:
    xnat.checksums = False
    xnat.add_resource(P, EXP, "1", "NIFTI")
    put_file(http, file_url(xnat, "a.nii"), b"bytes")

    assert listing(http, xnat)["a.nii"]["digest"] == ""


def test_writes_lists_every_request_that_could_change_data_but_not_logging_in_or_out(
    xnat: XnatEmulator, http: requests.Session
) -> None:
    xnat.add_resource(P, EXP, "1", "NIFTI")
    listing(http, xnat)
    assert xnat.writes == []
    put_file(http, file_url(xnat, "a.nii"), b"bytes")
    http.delete(xnat.url + "/data/JSESSION", timeout=5)

    assert [(r.method, r.path.rsplit("/", 1)[-1]) for r in xnat.writes] == [("PUT", "a.nii")]
