"""Secrets in the shapes XNAT's (or a proxy's) pages quote them: escaped passwords, listed session ids."""

from __future__ import annotations

import html
import json

import pytest

from devserver.stack import LocalStack

from .conftest import make_manifest

# What AWS Secrets Manager's generated passwords look like: punctuation included.
PASSWORD = "S3cr\"et<Pw'1&x"


def raw(stack: LocalStack, job: str) -> str:
    return stack.s3().get_object(Bucket=stack.bucket, Key=f"results/{job}.json")["Body"].read().decode()


def test_the_password_shown_in_a_401_page_is_not_stored(stack: LocalStack, monkeypatch: pytest.MonkeyPatch) -> None:
    """A 401 page that shows the password it was given (HTML-escaped as the page escapes text)."""
    stack.xnat.password = PASSWORD
    monkeypatch.setenv("XNAT_SERVICE_PASSWORD", PASSWORD)
    stack.put_image("net-1", "a.nii", b"a" * 1000)
    stack.xnat.fail_next(
        401, times=2, method="GET", path_contains="/data/projects",
        body=f"Login failed for {stack.xnat_user} with password {PASSWORD}",
    )  # fmt: skip
    result = stack.run("pw-401", make_manifest(files_relative_paths_to_upload=["a.nii"]))
    assert result["error"]["code"] == "xnat_auth_failed"
    text = raw(stack, "pw-401")
    shown = html.escape(PASSWORD, quote=False)  # what the page carried
    assert "Login failed" in text, "the page's text reached the result"
    message = json.loads(text)["error"]["message"]
    assert PASSWORD not in message and shown not in message, f"the password is in the result: {message}"


@pytest.mark.parametrize(
    "page",
    [
        # XNAT's SecureAction.csrfTokenErrorMessage lists cookies as "<name> <value> <maxAge> <domain>"
        "INVALID CSRF\n Cookies:\nJSESSIONID {sid} -1 null\n",
        # a gateway's debug answer listing cookies as JSON objects
        '{{"error": "forbidden", "cookies": [{{"name": "JSESSIONID", "value": "{sid}"}}]}}',
    ],
    ids=["xnat-csrf-cookie-list", "json-name-value"],
)
def test_the_session_id_in_an_error_page_is_not_stored(
    stack: LocalStack, monkeypatch: pytest.MonkeyPatch, page: str
) -> None:
    monkeypatch.setenv("UPLOAD_MODE", "per_file")
    stack.put_image("net-1", "a.nii", b"a" * 1000)

    def install() -> None:  # the session id is known once the worker logged in
        sid = stack.xnat.session_ids[-1]
        stack.xnat.fail_next(403, times=1, method="PUT", path_contains="/files/a.nii", body=page.format(sid=sid))

    stack.xnat.on_request(install, method="GET", path_contains="/files")
    result = stack.run("sid-echo", make_manifest(files_relative_paths_to_upload=["a.nii"]))
    assert result["files"][0]["status"] == "failed"
    text = raw(stack, "sid-echo")
    for sid in stack.xnat.session_ids:
        assert sid not in text, f"a session id is in the result: {result['files'][0]['error']}"
