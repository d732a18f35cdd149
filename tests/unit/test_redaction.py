"""Credentials never survive `redact`, whatever shape the echoing page gave them; ordinary text does."""

from __future__ import annotations

import base64
import html
import json
from urllib.parse import quote

import pytest

from xnat_upload import redaction
from xnat_upload.redaction import redact, register_credentials, register_secret

PASSWORD = "s3cr&t p@ss/word"


@pytest.fixture(autouse=True)
def registered() -> None:
    register_credentials("svc-uploader", PASSWORD)


@pytest.mark.parametrize(
    ("text", "gone"),
    [
        ("Authorization: Basic c3ZjOnB3ZA==\nHost: xnat", "c3ZjOnB3ZA=="),
        ("proxy-authorization: Bearer abc.def.ghi", "abc.def.ghi"),
        ("Cookie: JSESSIONID=0A1B2C3D4E5F; XNAT_CSRF=feedbeef", "0A1B2C3D4E5F"),
        ("Cookie: JSESSIONID=0A1B2C3D4E5F; XNAT_CSRF=feedbeef", "feedbeef"),
        ("Set-Cookie: JSESSIONID=0A1B2C3D4E5F; Path=/; HttpOnly", "0A1B2C3D4E5F"),
        ('{"headers": {"Authorization": "Basic c3ZjOnB3ZA==", "Accept": "*/*"}}', "c3ZjOnB3ZA=="),
        ("{'Cookie': 'JSESSIONID=0A1B2C3D4E5F'}", "0A1B2C3D4E5F"),
        ("cookies: JSESSIONID: 0A1B2C3D4E5F, other: 1", "0A1B2C3D4E5F"),
        ("GET /data/projects;jsessionid=0A1B2C3D4E5F?format=json", "0A1B2C3D4E5F"),
        ("<h3>Headers: authorization: basic c3ZjOnB3ZA==<br>accept: */*</h3>", "c3ZjOnB3ZA=="),
        ("query: username=svc&password=hunter22&format=json", "hunter22"),
        ("redirect to https://svc:hunter22@xnat.example.org/", "hunter22"),
        (f"login as svc-uploader with {PASSWORD}", PASSWORD),
        ("login with s3cr%26t%20p%40ss%2Fword", "s3cr%26t%20p%40ss%2Fword"),
        ("login with s3cr&amp;t p@ss/word", "s3cr&amp;t p@ss/word"),
        (base64.b64encode(f"svc-uploader:{PASSWORD}".encode()).decode(), "c3ZjLXVwbG9hZGVy"),
    ],
)
def test_credentials_cookies_and_the_password_are_removed(text: str, gone: str) -> None:
    redacted = redact(text)
    assert gone not in redacted
    assert "[redacted]" in redacted
    assert "Basic " not in redacted and "JSESSIONID=" not in redacted


@pytest.mark.parametrize(
    "text",
    [
        "could not upload 'seg/ct seg.nii.gz': XNAT answered 500: java.util.ConcurrentModificationException",
        "no XNAT project has secondary ID 'CHP-001'",
        "XNAT lists MD5 3f2a0000000000000000000000000000, 3f2b0000000000000000000000000000 was sent",
    ],
)
def test_ordinary_messages_are_left_alone(text: str) -> None:
    assert redact(text) == text


def test_a_registered_secret_is_redacted_from_then_on_and_tiny_values_are_ignored() -> None:
    register_secret("rotated-Pa55")
    register_secret("ab")  # too short to redact without blanking ordinary words
    assert redact("x rotated-Pa55 y") == "x [redacted] y"
    assert redact("tab able") == "tab able"


# -- the shapes a page may quote a secret in ---------------------------------------------------------

PUNCTUATED = "S3cr\"et<Pw'1&x\\y"  # what a generated password may hold


@pytest.mark.parametrize(
    "shown",
    [
        html.escape(PUNCTUATED, quote=False),
        html.escape(PUNCTUATED),
        html.escape(PUNCTUATED).replace("&quot;", "&#34;").replace("&#x27;", "&#39;"),
        json.dumps(PUNCTUATED)[1:-1],
        quote(PUNCTUATED, safe=""),
    ],
    ids=["html-text", "html-attribute", "numeric-entities", "json-string", "url-encoded"],
)
def test_a_registered_password_is_redacted_in_every_shape_a_page_quotes_it(shown: str) -> None:
    redaction.register_secret(PUNCTUATED)
    assert shown not in redaction.redact(f"Login failed with password {shown} for svc")


def test_a_quoted_secret_with_escaped_quotes_is_redacted_to_its_closing_quote() -> None:
    text = redaction.redact('{"password": "half\\"other half", "user": "svc"}')
    assert "other half" not in text and '"user": "svc"' in text


def test_a_session_id_listed_without_a_separator_is_redacted() -> None:
    assert "0123ABCD" not in redaction.redact("Cookies:\nJSESSIONID 0123ABCD -1 null")


def test_only_the_recent_session_ids_are_kept() -> None:
    for index in range(40):
        redaction.register_session_id(f"session-{index:04d}-abcdef")
    assert "session-0039-abcdef" not in redaction.redact("echo session-0039-abcdef")
    assert len(redaction._session_ids) == 16
