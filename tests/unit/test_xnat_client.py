"""The XNAT client against recorded XNAT answers (`responses`): statuses, envelopes, retries, quoting."""

from __future__ import annotations

import io
import json

import pytest
import responses
from responses import matchers

from xnat_upload.exceptions import XnatAuthError, XnatDuplicateError, XnatError
from xnat_upload.xnat import RetryPolicy, XnatClient
from xnat_upload.xnat.models import Experiment

BASE = "https://xnat.test"
EXPERIMENT = Experiment("PRJ001", "XNAT_S00001", "XNAT_E00001", "ACC0001")
SCAN = f"{BASE}/data/projects/PRJ001/subjects/XNAT_S00001/experiments/XNAT_E00001/scans/1"


class Bytes(io.BytesIO):
    def __len__(self) -> int:
        return len(self.getvalue())


def client(retries: int = 2) -> XnatClient:
    return XnatClient(BASE, "svc", "pw", retry=RetryPolicy(max_retries=retries, base_delay=0.0))


def login(rsps: responses.RequestsMock) -> None:
    rsps.post(f"{BASE}/data/JSESSION", body="SESSIONID", headers={"Set-Cookie": "JSESSIONID=SESSIONID; Path=/"})


@responses.activate
def test_logs_in_once_with_basic_auth_and_out_on_exit() -> None:
    login(responses.mock)
    responses.delete(f"{BASE}/data/JSESSION")
    with client():
        pass
    assert [c.request.method for c in responses.calls] == ["POST", "DELETE"]
    assert responses.calls[0].request.headers["Authorization"].startswith("Basic ")
    assert "Authorization" not in responses.calls[1].request.headers


@responses.activate
def test_bad_credentials_are_an_auth_error() -> None:
    responses.post(f"{BASE}/data/JSESSION", status=401, body="<h3>Login attempt failed</h3>")
    with pytest.raises(XnatAuthError):
        client().login()


@responses.activate
def test_project_found_by_exact_secondary_id() -> None:
    responses.get(
        f"{BASE}/data/projects",
        match=[matchers.query_param_matcher({"format": "json", "secondary_ID": "CHP-001"})],
        json={"ResultSet": {"Result": [{"ID": "PRJ001", "secondary_ID": "CHP-001"}], "totalRecords": "1"}},
    )
    assert client().find_project_by_secondary_id("CHP-001") == "PRJ001"


@responses.activate
def test_a_file_put_answered_with_duplicates_is_never_an_upload() -> None:
    responses.put(f"{SCAN}/resources/NIFTI/files/a.nii", body=json.dumps({"duplicates": ["a.nii"]}))
    with pytest.raises(XnatDuplicateError) as caught:
        client().upload_file_to_xnat(EXPERIMENT, "1", "NIFTI", "a.nii", lambda: Bytes(b"x"))
    assert caught.value.duplicates == ["a.nii"]


@responses.activate
def test_upload_sends_inbody_and_overwrite_and_returns_a_clean_url() -> None:
    responses.put(
        f"{SCAN}/resources/NIFTI/files/seg/ct%20seg.nii.gz",
        match=[matchers.query_param_matcher({"inbody": "true", "overwrite": "true"})],
    )
    url = client().upload_file_to_xnat(
        EXPERIMENT, "1", "NIFTI", "seg/ct seg.nii.gz", lambda: Bytes(b"x"), overwrite=True
    )
    assert url == f"{SCAN}/resources/NIFTI/files/seg/ct%20seg.nii.gz"
    assert responses.calls[0].request.headers["Content-Length"] == "1"


@responses.activate
def test_5xx_is_retried_with_a_fresh_body_each_time() -> None:
    put = f"{SCAN}/resources/NIFTI/files/a.nii"
    responses.put(put, status=503)
    responses.put(put, status=200)
    opened: list[Bytes] = []

    def open_body() -> Bytes:
        opened.append(Bytes(b"payload"))
        return opened[-1]

    client().upload_file_to_xnat(EXPERIMENT, "1", "NIFTI", "a.nii", open_body)
    assert len(opened) == 2
    assert opened[0] is not opened[1]


@responses.activate
def test_a_collided_put_is_retried_without_overwrite_and_the_caller_is_told() -> None:
    """A retry never adds overwrite=true by itself: the bytes on disk may not be ours (the caller decides)."""
    put = f"{SCAN}/resources/NIFTI/files/a.nii"
    responses.put(put, status=500, body="<h3>ConcurrentModificationException</h3>")
    responses.put(put, status=200, match=[matchers.query_param_matcher({"inbody": "true"})])
    failed: list[bool] = []
    client().upload_file_to_xnat(
        EXPERIMENT, "1", "NIFTI", "a.nii", lambda: Bytes(b"x"), on_failed_attempt=failed.append
    )
    assert ["overwrite" in call.request.url for call in responses.calls] == [False, False]
    assert failed == [True], "told after the first attempt: its 500 may have left its bytes on disk"


@pytest.mark.parametrize(("status", "stored"), [(500, True), (502, True), (504, True), (503, False), (429, False)])
@responses.activate
def test_the_caller_learns_whether_a_failed_put_could_have_stored_its_bytes(status: int, stored: bool) -> None:
    put = f"{SCAN}/resources/NIFTI/files/a.nii"
    responses.put(put, status=status)
    responses.put(put, status=200)
    failed: list[bool] = []
    client().upload_file_to_xnat(
        EXPERIMENT, "1", "NIFTI", "a.nii", lambda: Bytes(b"x"), on_failed_attempt=failed.append
    )
    assert failed == [stored]


@responses.activate
def test_4xx_is_not_retried() -> None:
    responses.put(f"{SCAN}?xsiType=xnat%3AmrScanData", status=409)
    with pytest.raises(XnatError, match="409"):
        client().create_xnat_scan(EXPERIMENT, "1", "xnat:mrScanData")
    assert len(responses.calls) == 1


@responses.activate
def test_retries_are_bounded() -> None:
    responses.get(f"{BASE}/data/projects", status=500)
    with pytest.raises(XnatError, match="500"):
        client(retries=3).find_project_by_secondary_id("CHP-001")
    assert len(responses.calls) == 4


@responses.activate
def test_a_401_mid_job_logs_in_again_once_and_retries() -> None:
    login(responses.mock)
    responses.get(f"{BASE}/data/projects", status=401)
    responses.get(f"{BASE}/data/projects", json={"ResultSet": {"Result": [{"ID": "P", "secondary_ID": "C"}]}})
    xnat = client()
    xnat.login()
    assert xnat.find_project_by_secondary_id("C") == "P"
    assert [c.request.method for c in responses.calls] == ["POST", "GET", "POST", "GET"]


@responses.activate
def test_an_existing_resource_409_is_fine() -> None:
    responses.put(f"{SCAN}/resources/NIFTI", status=409)
    assert client().create_xnat_resource(EXPERIMENT, "1", "NIFTI") is False


@responses.activate
def test_listing_is_keyed_by_the_relative_path_in_the_uri_not_the_basename() -> None:
    responses.get(
        f"{SCAN}/resources/NIFTI/files",
        json={
            "ResultSet": {
                "title": "Files",
                "Result": [
                    {
                        "Name": "seg.nii",
                        "Size": "3",
                        "digest": "ABC",
                        "URI": "/data/experiments/E/scans/1/resources/7/files/a/seg.nii",
                    },
                    {
                        "Name": "seg.nii",
                        "Size": "4",
                        "digest": "def",
                        "URI": "/data/experiments/E/scans/1/resources/7/files/b/seg.nii",
                    },
                ],
            }
        },
    )
    listing = client().list_resource_files(EXPERIMENT, "1", "NIFTI")
    assert sorted(listing) == ["a/seg.nii", "b/seg.nii"]
    assert listing["a/seg.nii"].digest == "abc"
    assert listing["b/seg.nii"].size == 4


def test_identifiers_are_quoted_as_single_segments() -> None:
    odd = Experiment("P/1", "S?x", "E#1", "L")
    url = client().file_url(odd, "1", "R", "f.nii")
    assert url == f"{BASE}/data/projects/P%2F1/subjects/S%3Fx/experiments/E%231/scans/1/resources/R/files/f.nii"


@responses.activate
def test_a_refused_re_login_ends_the_clients_xnat_work_without_another_request() -> None:
    login(responses.mock)
    responses.get(f"{BASE}/data/projects", status=401)  # the session expired
    responses.post(f"{BASE}/data/JSESSION", status=401, body="<h3>Login attempt failed</h3>")  # password rotated
    xnat = client()
    xnat.login()

    with pytest.raises(XnatAuthError, match="when the session was renewed"):
        xnat.find_project_by_secondary_id("C")
    calls = len(responses.calls)
    for call in (
        lambda: xnat.find_project_by_secondary_id("C"),
        lambda: xnat.list_resource_files(EXPERIMENT, "1", "NIFTI"),
        lambda: xnat.upload_file_to_xnat(EXPERIMENT, "1", "NIFTI", "a.nii", lambda: Bytes(b"x")),
    ):
        with pytest.raises(XnatAuthError, match="no further XNAT calls"):
            call()
    xnat.logout()

    assert len(responses.calls) == calls, "nothing sent after the refused re-login, not even the logout"
    assert [c.request.method for c in responses.calls] == ["POST", "GET", "POST"]
    assert xnat.auth_failed


SSO_PAGE = (
    '<!DOCTYPE html><html><body><form><input type="password" name="p"><button>Sign in</button></form></body></html>'
)


@responses.activate
def test_a_login_answered_with_a_page_and_a_cookie_is_an_auth_error_not_a_session() -> None:
    responses.post(f"{BASE}/data/JSESSION", body=SSO_PAGE, headers={"Set-Cookie": "JSESSIONID=IDP123; Path=/"})
    with pytest.raises(XnatAuthError, match="login page stands in front of XNAT"):
        client().login()


@pytest.mark.parametrize("session_id", ["0123456789ABCDEF0123456789ABCDEF", "0123456789ABCDEF.node1\n"])
@responses.activate
def test_a_bare_session_id_is_a_login(session_id: str) -> None:
    responses.post(f"{BASE}/data/JSESSION", body=session_id, headers={"Set-Cookie": "JSESSIONID=X; Path=/"})
    client().login()


@responses.activate
def test_a_login_page_instead_of_json_is_an_auth_error_and_ends_the_clients_work() -> None:
    responses.get(f"{BASE}/data/projects", body=SSO_PAGE, content_type="text/html")
    xnat = client()
    with pytest.raises(XnatAuthError, match="login page instead of the list projects"):
        xnat.find_project_by_secondary_id("C")
    with pytest.raises(XnatAuthError, match="no further XNAT calls"):
        xnat.list_resource_files(EXPERIMENT, "1", "NIFTI")
    assert len(responses.calls) == 1


@responses.activate
def test_other_html_instead_of_json_is_an_unreadable_answer() -> None:
    responses.get(f"{BASE}/data/projects", body="<html><body>Bad gateway</body></html>", content_type="text/html")
    with pytest.raises(XnatError, match="unexpected list projects from XNAT") as caught:
        client().find_project_by_secondary_id("C")
    assert not isinstance(caught.value, XnatAuthError)
