"""Credentials out of every text that came from outside, before it is stored, logged or returned.

XNAT's own error pages can list the request's headers and cookies (its CSRF check does, session
cookie included), and a proxy's debug page may echo `Authorization` too. Any such text that
reaches a result, a log line or an API answer would hand out the service account. `redact` is
applied where response text enters the system (the XNAT client) and again where results are
written; it removes what looks like a credential and every secret registered here.

Example::

    register_credentials("svc", password)  # the client does this when it is created
    register_session_id(session_id)  # and this after each login
    redact("Authorization: Basic c3ZjOnB3 ...")  # -> "Authorization: [redacted] ..."
"""

from __future__ import annotations

import base64
import html
import json
import re
import threading
from collections import deque
from urllib.parse import quote, quote_plus

MASK = "[redacted]"
_MIN_SECRET_LENGTH = 3  # shorter values would blank out ordinary words
_RECENT_SESSION_IDS = 16  # a warm Lambda logs in once per invocation: keep the last few, not every one

# Header-like `name: value` / `name=value` pairs whose whole value is a credential: up to the end of
# the line (or the next HTML tag) when bare, up to the closing quote when quoted (JSON, reprs).
_HEADER = re.compile(
    r"""(?ix)
    \b(proxy-authorization|authorization|set-cookie|cookie|x-xnat-csrf|xnat_csrf|x-auth-token|x-api-key)\b
    (["']?\s*[:=]\s*)
    (?: "(?:\\.|[^"\\\r\n])*" | '(?:\\.|[^'\\\r\n])*' | [^\r\n<]* )
    """
)
# A credential scheme and its token, wherever it appears (header already folded into one line, ...).
_SCHEME = re.compile(r"(?i)\b(?:basic|bearer|digest|negotiate)\s+[A-Za-z0-9+/=._~-]{4,}")
# A session id: `JSESSIONID=...`, `JSESSIONID: ...`, `;jsessionid=...` in a URL, `"JSESSIONID": "..."`,
# and XNAT's own cookie listing on its CSRF error page, `JSESSIONID <value> <max age> <domain>`.
_SESSION = re.compile(r"""(?i)\bjsessionid\b["']?(?:\s*[:=]\s*|[ \t]+)["']?[^\s;,"'<>&]+""")
# Secret-named parameters in a query string, a form or a JSON document.
_NAMED = re.compile(
    r"""(?ix)
    \b(password|passwd|pwd|secret|token|api[_-]?key|access[_-]?key|session[_-]?id)\b
    (["']?\s*[:=]\s*)
    (?: "(?:\\.|[^"\\\r\n])*" | '(?:\\.|[^'\\\r\n])*' | [^\s&;,"'<>]+ )
    """
)
# Credentials inside a URL: scheme://user:password@host
_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/\s:@]+:[^/\s@]*@")
# Nothing above can match a text without one of these (lower-cased): most texts are decided by them.
_SUSPECT = (
    "authori", "cookie", "csrf", "token", "key", "jsessionid", "basic", "bearer", "digest", "negotiate",
    "passw", "pwd", "secret", "session",
)  # fmt: skip

_secrets: tuple[str, ...] = ()  # longest first: a longer secret may contain a shorter one
_session_ids: deque[str] = deque(maxlen=_RECENT_SESSION_IDS)
_lock = threading.Lock()


def _forms(value: str) -> set[str]:
    """The ways a page may quote `value`: as it is, URL-encoded, HTML-escaped (with or without quotes,
    named or numeric entities) and JSON-escaped."""
    escaped = html.escape(value)
    return {
        value,
        quote(value, safe=""),
        quote_plus(value),
        escaped,
        html.escape(value, quote=False),
        escaped.replace("&quot;", "&#34;").replace("&#x27;", "&#39;"),
        escaped.replace("&#x27;", "&apos;"),
        json.dumps(value)[1:-1],
        json.dumps(value, ensure_ascii=False)[1:-1],
    }


def register_secret(value: str | None) -> None:
    """Redact this exact value (and the forms a page may quote it in) from every text from now on."""
    if not value or len(value) < _MIN_SECRET_LENGTH:
        return
    global _secrets
    with _lock:
        _secrets = tuple(sorted(_forms(value).union(_secrets), key=len, reverse=True))


def register_session_id(value: str | None) -> None:
    """A session XNAT issued: redacted wherever a page quotes it (in any shape), while it is recent."""
    if not value or len(value) < _MIN_SECRET_LENGTH:
        return
    with _lock:
        if value not in _session_ids:
            _session_ids.append(value)


def register_credentials(username: str, password: str) -> None:
    """The service password and the Basic credentials built from it."""
    register_secret(password)
    register_secret(base64.b64encode(f"{username}:{password}".encode()).decode())


def redact(text: str) -> str:
    """`text` without credentials, cookies, session ids or any registered secret."""
    if not text:
        return text
    for secret in (*_secrets, *_session_ids):
        if secret in text:
            text = text.replace(secret, MASK)
    if "://" in text and "@" in text:
        text = _USERINFO.sub(lambda m: f"{m.group(1)}{MASK}@", text)
    lowered = text.lower()
    if not any(word in lowered for word in _SUSPECT):
        return text
    text = _HEADER.sub(lambda m: f"{m.group(1)}{m.group(2)}{MASK}", text)
    text = _SESSION.sub(f"JSESSIONID {MASK}", text)
    text = _SCHEME.sub(MASK, text)
    return _NAMED.sub(lambda m: f"{m.group(1)}{m.group(2)}{MASK}", text)
