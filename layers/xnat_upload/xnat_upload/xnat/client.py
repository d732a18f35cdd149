"""XNAT REST client: one logged-in `requests.Session` per job, the seed's helper names.

Example::

    with XnatClient("https://xnat.example.org", "svc", password) as xnat:
        project = xnat.find_project_by_secondary_id("CHP-001")
        experiment = xnat.get_experiment(project, "ACC0001")
        xnat.create_xnat_scan(experiment, "1", "xnat:mrScanData")
        xnat.create_xnat_resource(experiment, "1", "NIFTI")
        url = xnat.upload_file_to_xnat(experiment, "1", "NIFTI", "seg/a.nii.gz", open_body)

Every call checks its status; transient failures (connection errors, timeouts, 429, 5xx) are
retried with backoff for a time window, and a 401 re-logs-in once (a refused re-login ends the
client's work: nothing is sent after it). With a time budget, every request has an absolute
deadline that holds even against a server trickling bytes (`deadline.py`). Nothing here logs a
header or a cookie, and text taken from XNAT's answers is redacted (`redaction.py`).
"""

from __future__ import annotations

import contextlib
import re
import threading
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Protocol
from urllib.parse import unquote, urlsplit

import requests
import urllib3

from .. import safe_json
from ..exceptions import (
    ExperimentNotFoundError,
    ProjectNotFoundError,
    TimeBudgetExceededError,
    XnatAuthError,
    XnatDuplicateError,
    XnatError,
    XnatUploadError,
)
from ..observability import logger
from ..redaction import redact, register_credentials, register_session_id
from . import urls
from .deadline import CallDeadline, DeadlineAdapter
from .models import Experiment, RemoteFile
from .retry import RetryPolicy

USER_AGENT = "xnat-upload-lambda/1.0 (python-requests)"  # not browser-like: XNAT answers 401, not 302


class Body(Protocol):
    """A request body requests can stream: `read` in chunks, exact `len`."""

    def read(self, size: int = -1) -> bytes: ...
    def __len__(self) -> int: ...


class XnatClient:
    """A logged-in XNAT session; use as a context manager so logout always happens."""

    def __init__(
        self,
        base_url: str,
        username: str,
        password: str,
        *,
        verify: bool | str = True,
        timeout: tuple[float, float] = (10.0, 120.0),
        pool_size: int = 8,
        retry: RetryPolicy | None = None,
        deadline_margin: float = 0.0,
    ) -> None:
        """`deadline_margin`: seconds kept free before `retry.remaining_seconds()` runs out, so that
        no call (its timeouts included) can end after the point where the result must be written."""
        self.base_url = base_url.rstrip("/")
        self._credentials = (username, password)
        register_credentials(username, password)  # XNAT's error pages may echo them: never pass them on
        self._timeout = timeout
        self._retry = retry or RetryPolicy()
        self._deadline_margin = deadline_margin
        self._session = requests.Session()
        self._session.verify = verify  # TLS is always verified; a CA bundle path may replace the default store
        self._session.headers["User-Agent"] = USER_AGENT
        adapter = DeadlineAdapter(pool_connections=1, pool_maxsize=pool_size, max_retries=0)
        self._session.mount("https://", adapter)
        self._session.mount("http://", adapter)
        self._login_lock = threading.Lock()
        self._session_generation = 0
        self._auth_failure: str | None = None  # set once a re-login failed: no request is sent after it
        self.requests_made = 0
        self.retries = 0

    # -- session -----------------------------------------------------------------------------

    def __enter__(self) -> XnatClient:
        try:
            self.login()
        except BaseException:
            self._session.close()  # `__exit__` does not run when entering fails
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.logout()
        self._session.close()

    def login(self) -> None:
        """POST /data/JSESSION once; the cookie it sets authenticates every later call."""

        def attempt() -> requests.Response:
            return self._send("POST", "/data/JSESSION", auth=self._credentials)

        response, retried = self._with_retries(attempt, "log in to XNAT")
        if response.status_code in (401, 403):
            raise XnatAuthError("XNAT rejected the service credentials", response.status_code)
        if response.status_code == 429 or response.status_code >= 500:
            # XNAT is down or overloaded: not a credentials problem, and a re-run may succeed.
            raise XnatError(
                f"could not log in to XNAT: it answered {response.status_code}{_error_detail(response)}{retried}",
                response.status_code,
            )
        if response.status_code != 200 or "JSESSIONID" not in self._session.cookies:
            raise XnatAuthError(f"XNAT login answered {response.status_code} without a session", response.status_code)
        for cookie in self._session.cookies:  # error pages may list the session in any shape
            if cookie.name == "JSESSIONID":
                register_session_id(cookie.value)
        if not _SESSION_ID.fullmatch(response.content[:300].strip().decode("latin-1")):
            # XNAT answers the bare session id; a page here is a single sign-on or login page in front of
            # XNAT that set a cookie of its own: later calls would get that page instead of JSON.
            raise XnatAuthError(
                "XNAT's login answered 200 with a page instead of a session id: a single sign-on or login page "
                "stands in front of XNAT's REST API; the service account needs a route that accepts HTTP Basic auth",
                response.status_code,
            )
        self._session_generation += 1

    def logout(self) -> None:
        """End the server session; failures are swallowed: the job's outcome does not depend on it."""
        if "JSESSIONID" not in self._session.cookies:
            return
        with contextlib.suppress(XnatUploadError):  # unreachable, or out of time: the session idles out
            self._send("DELETE", "/data/JSESSION")
        self._session.cookies.clear()

    @property
    def auth_failed(self) -> bool:
        """XNAT refused the service account when the session was renewed: this client is done."""
        return self._auth_failure is not None

    def _relogin(self, generation: int) -> None:
        """Re-login once per expired session, even when several workers notice at the same time.

        A refused re-login is final for this client: after a password rotation every later call
        would fail its own login, and each failed login counts towards locking the account.
        """
        with self._login_lock:
            self._refuse_after_auth_failure()
            if generation != self._session_generation:
                return
            self._session.cookies.clear()
            try:
                self.login()
            except XnatAuthError as exc:
                self._auth_failure = (
                    f"XNAT refused the service account when the session was renewed ({exc.message}); "
                    "no further XNAT calls in this job"
                )
                raise XnatAuthError(self._auth_failure, exc.status) from exc

    def _refuse_after_auth_failure(self) -> None:
        if self._auth_failure is not None:
            raise XnatAuthError(self._auth_failure, 401)

    # -- transport ---------------------------------------------------------------------------

    def _send(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        """One HTTP request, over by the call deadline whatever the server does.

        Socket timeouts catch a silent server; the `CallDeadline` catches one that trickles bytes
        in either direction (it shuts the socket down when the time budget, minus the margin kept
        for writing the result, runs out). A request cut that way is `TimeBudgetExceededError`.
        """
        try:
            self._refuse_after_auth_failure()  # fails fast, nothing sent
            left = self._time_left(method, path)
        except XnatUploadError as exc:
            raise _not_sent(exc) from exc.__cause__
        timeout = self._timeout if left is None else tuple(min(t, left) for t in self._timeout)
        deadline = CallDeadline(left) if left is not None else None
        self.requests_made += 1
        try:
            with deadline or contextlib.nullcontext():
                # No redirects: a consumed streaming body cannot be sent again to another URL.
                response = self._session.request(
                    method, self.base_url + path, timeout=timeout, allow_redirects=False, **kwargs
                )
        except Exception as exc:
            if deadline is not None and deadline.expired:
                raise self._cut(method, path, left) from exc
            if isinstance(exc, requests.RequestException):
                raise XnatError(f"{method} {_redact(path)} failed: {type(exc).__name__}") from exc
            raise
        if deadline is not None and deadline.expired:
            # A socket shut down mid-answer can look like an answer that ended (headers or body cut
            # short at EOF): anything that finished after the deadline is not trusted.
            raise self._cut(method, path, left)
        return response

    @staticmethod
    def _cut(method: str, path: str, left: float | None) -> TimeBudgetExceededError:
        return TimeBudgetExceededError(
            f"{method} {_redact(path)} was cut at the deadline: XNAT had not answered "
            f"within the {left or 0:.1f} s the time budget left for it"
        )

    def _time_left(self, method: str, path: str) -> float | None:
        """Seconds this call may take: until the time budget's deadline minus the margin kept for
        writing the result (None without a time budget)."""
        remaining = self._retry.remaining_seconds
        if remaining is None:
            return None
        left = remaining() - self._deadline_margin
        if left <= 0:
            raise TimeBudgetExceededError(f"no time left for {method} {_redact(path)} before the deadline")
        return left

    def _with_retries(
        self, attempt: Callable[[], requests.Response], what: str, retries_on_500: int | None = None
    ) -> tuple[requests.Response, str]:
        """Run `attempt` until it answers something final; retries re-run it from scratch.

        Transient failures (connection errors, timeouts, 429, 5xx) are retried within the retry
        window and the time budget. A 500 is XNAT's own processing failing: a catalog conflict that
        passes, or what was sent that XNAT cannot take, which no window cures; `retries_on_500` caps
        its retries where the caller has a better remedy (a zip batch is split). Returns the last
        answer and, when it is still a transient failure, a note saying how long it was retried.
        """
        started = self._retry.clock()
        tries = answered_500 = 0
        while True:
            try:
                response = attempt()
            except XnatError as exc:
                if not exc.retryable:  # e.g. the service account refused: final
                    raise
                if self._retry_again(what, tries, started, exc.message):
                    tries += 1
                    continue
                raise XnatError(f"could not {what}: {exc.message}{self._gave_up(tries, started)}") from exc
            if response.status_code == 429 or response.status_code >= 500:
                answered_500 += response.status_code == 500
                capped = retries_on_500 is not None and answered_500 > retries_on_500
                if not capped and self._retry_again(what, tries, started, f"XNAT answered {response.status_code}"):
                    tries += 1
                    continue
                return response, self._gave_up(tries, started)
            return response, ""

    def _retry_again(self, what: str, tries: int, started: float, reason: str) -> bool:
        """Wait before the next attempt, if the retry window and the time budget allow one."""
        pause = self._retry.pause_before(tries, started, reserve=self._deadline_margin)
        if pause is None:
            return False
        self.retries += 1
        logger.warning("XNAT call failed; retrying", extra={"call": what, "attempt": tries + 1, "reason": reason})
        self._retry.sleep(pause)
        return True

    def _gave_up(self, tries: int, started: float) -> str:
        if not tries:
            return ""
        return f" (after {tries + 1} attempts in {self._retry.clock() - started:.1f} s)"

    def request(
        self,
        method: str,
        path: str,
        what: str,
        *,
        ok: Iterable[int] = (200,),
        params: Mapping[str, str] | None = None,
        open_body: Callable[[], Body] | None = None,
        headers: Mapping[str, str] | None = None,
        on_failed_attempt: Callable[[bool], None] | None = None,
        retries_on_500: int | None = None,
    ) -> requests.Response:
        """One logical call: retries transient failures, re-logs-in once on 401, checks the status.

        `on_failed_attempt(may_have_stored)` is told after every attempt that did not answer one of
        `ok`, whether XNAT could have written what it was sent (see `may_have_stored`): a caller that
        uploads needs to know whose bytes may lie on XNAT's disk.
        """
        ok = tuple(ok)
        relogged = False

        def attempt() -> requests.Response:
            body = open_body() if open_body is not None else None
            try:
                response = self._send(method, path, params=params, data=_as_blocks(body), headers=headers)
            except Exception as exc:
                if on_failed_attempt is not None and not getattr(exc, "not_sent", False):
                    on_failed_attempt(may_have_stored(exc))
                raise
            if response.status_code not in ok and on_failed_attempt is not None:
                on_failed_attempt(may_have_stored(response))
            return response

        while True:
            generation = self._session_generation
            response, retried = self._with_retries(attempt, what, retries_on_500)
            if response.status_code == 401 and not relogged:
                relogged = True
                self._relogin(generation)
                continue
            if response.status_code in ok:
                return response
            detail = _error_detail(response)
            if response.status_code == 401:
                raise XnatAuthError(f"could not {what}: XNAT answered 401{detail}", 401)
            raise XnatError(
                f"could not {what}: XNAT answered {response.status_code}{detail}{retried}", response.status_code
            )

    def _json(self, response: requests.Response, what: str) -> Any:
        """An answer XNAT sends as JSON. An HTML login page instead means the session is not honoured
        (a single sign-on page took over): that ends the client's XNAT work like a refused re-login."""
        try:
            return safe_json.loads(response.content)
        except ValueError as exc:
            if _is_login_page(response):
                self._auth_failure = (
                    f"XNAT answered a login page instead of the {what} (a single sign-on or login page stands "
                    "in front of XNAT's REST API); no further XNAT calls in this job"
                )
                raise XnatAuthError(self._auth_failure, response.status_code) from exc
            raise XnatError(f"unexpected {what} from XNAT: {type(exc).__name__}") from exc

    def _result_rows(self, response: requests.Response, what: str) -> list[dict[str, Any]]:
        document = self._json(response, what)
        try:
            rows = document["ResultSet"]["Result"]
        except (KeyError, TypeError) as exc:
            raise XnatError(f"unexpected {what} from XNAT: {type(exc).__name__}") from exc
        if not isinstance(rows, list):
            raise XnatError(f"unexpected {what} from XNAT: Result is a {type(rows).__name__}, not a list")
        return [row for row in rows if isinstance(row, dict)]

    # -- lookups -----------------------------------------------------------------------------

    def find_project_by_secondary_id(self, secondary_id: str) -> str:
        """The project whose secondary ID is the central hub project ID (exact match)."""
        response = self.request(
            "GET", "/data/projects", "list projects", params={"format": "json", "secondary_ID": secondary_id}
        )
        rows = self._result_rows(response, "list projects")
        matches = [row["ID"] for row in rows if row.get("secondary_ID") == secondary_id and row.get("ID")]
        if not matches:
            raise ProjectNotFoundError(self._no_project_message(secondary_id))
        if len(matches) > 1:
            raise ProjectNotFoundError(f"several XNAT projects have secondary ID {secondary_id!r}: {sorted(matches)}")
        return matches[0]

    def _no_project_message(self, secondary_id: str) -> str:
        """Why no project matched, with the likely remedy: a central hub project ID that is in fact an XNAT
        project ID (`GET /data/projects/{X}` finds a project by its ID, never by its secondary ID) is named so."""
        message = f"no XNAT project has secondary ID {secondary_id!r}"
        remedy = (
            "central_hub_project_id must be the project's secondary ID (its 'Running Title' in XNAT), "
            "not its project ID"
        )
        try:
            response = self.request(
                "GET",
                urls.join("data", "projects", secondary_id),
                "look the central hub project ID up as a project ID",
                ok=(200, 403, 404),
                params={"format": "json"},
            )
            if response.status_code != 200:
                return f"{message}; {remedy}"
            fields = self._json(response, "project document")["items"][0]["data_fields"]
            secondary = fields.get("secondary_ID")
        except XnatError as exc:
            if isinstance(exc, XnatAuthError) or exc.retryable:
                raise  # not an answer about the project: the job waits or fails as for any other lookup
            return f"{message}; {remedy}"
        except (KeyError, IndexError, TypeError):
            return f"{message}; {remedy}"
        if secondary and isinstance(secondary, str):
            return (
                f"{message}, but {secondary_id!r} is the XNAT project ID of the project whose secondary ID is "
                f"{secondary!r}: set central_hub_project_id to {secondary!r}"
            )
        return f"{message}, but {secondary_id!r} is the XNAT project ID of a project without one; {remedy}"

    def get_experiment(self, project_id: str, label: str) -> Experiment:
        """The session labelled with the accession ID, and the subject it belongs to."""
        path = urls.join("data", "projects", project_id, "experiments", label)
        response = self.request("GET", path, "find the experiment", ok=(200, 404), params={"format": "json"})
        if response.status_code == 404:
            raise ExperimentNotFoundError(
                f"no experiment labelled {label!r} in XNAT project {project_id!r}: accession_id must be the label "
                "of a session that exists in the project (the service creates scans and resources, not sessions)"
            )
        document = self._json(response, "experiment document")
        try:
            fields = document["items"][0]["data_fields"]
            experiment = Experiment(project_id, fields["subject_ID"], fields["ID"], fields.get("label", label))
        except (KeyError, IndexError, TypeError) as exc:
            raise XnatError(f"unexpected experiment document from XNAT: {type(exc).__name__}") from exc
        if experiment.label != label:
            # XNAT also finds a session by its ID: a job naming it that way would get a message group of
            # its own and write into the same resource as the jobs naming it by its label.
            raise ExperimentNotFoundError(
                f"{label!r} is the XNAT ID of the session labelled {experiment.label!r}: accession_id must be "
                "the session's label"
            )
        return experiment

    # -- scan and resource -------------------------------------------------------------------

    def _scan_path(self, experiment: Experiment, scan_id: str, *rest: str) -> str:
        return urls.join(
            "data", "projects", experiment.project_id, "subjects", experiment.subject_id,
            "experiments", experiment.experiment_id, "scans", scan_id, *rest,
        )  # fmt: skip

    def create_xnat_scan(self, experiment: Experiment, scan_id: str, xsi_type: str) -> None:
        """Create or keep the scan. 409 means it exists with another type: a real conflict."""
        self.request(
            "PUT", self._scan_path(experiment, scan_id), f"create scan {scan_id!r} ({xsi_type})",
            params={"xsiType": xsi_type},
        )  # fmt: skip

    def create_xnat_resource(
        self, experiment: Experiment, scan_id: str, resource_id: str, fmt: str | None = None, content: str | None = None
    ) -> bool:
        """Create the resource before any upload; True if created, False if it was there (409)."""
        params = {k: v for k, v in (("format", fmt), ("content", content)) if v}
        response = self.request(
            "PUT", self._scan_path(experiment, scan_id, "resources", resource_id),
            f"create resource {resource_id!r}", ok=(200, 201, 409), params=params or None,
        )  # fmt: skip
        return response.status_code != 409

    def scan_exists(self, experiment: Experiment, scan_id: str) -> bool:
        """Whether the scan exists, without creating it (check mode writes nothing)."""
        response = self.request(
            "GET", self._scan_path(experiment, scan_id), f"find scan {scan_id!r}", ok=(200, 404),
            params={"format": "json"},
        )  # fmt: skip
        return response.status_code == 200

    def resource_exists(self, experiment: Experiment, scan_id: str, resource_id: str) -> bool:
        """Whether the scan has a resource with this label, without creating it."""
        path = self._scan_path(experiment, scan_id, "resources")
        response = self.request("GET", path, "list the scan's resources", ok=(200, 404), params={"format": "json"})
        if response.status_code == 404:
            return False
        return any(row.get("label") == resource_id for row in self._result_rows(response, "resources"))

    # -- files -------------------------------------------------------------------------------

    def file_url(self, experiment: Experiment, scan_id: str, resource_id: str, relative_path: str) -> str:
        """The clean URL of a file (no query string): what the seed returned, minus `?inbody=true`."""
        return self.base_url + self._file_path(experiment, scan_id, resource_id, relative_path)

    def _file_path(self, experiment: Experiment, scan_id: str, resource_id: str, relative_path: str) -> str:
        return (
            self._scan_path(experiment, scan_id, "resources", resource_id) + "/files/" + urls.file_path(relative_path)
        )

    def answers(self, experiment: Experiment, scan_id: str, resource_id: str) -> bool:
        """One request, no retries: does XNAT answer at all (the resource's listing, which any 2xx-4xx
        answer counts for)? Tells "XNAT is down" from "XNAT refused this one transfer"."""
        path = self._scan_path(experiment, scan_id, "resources", resource_id, "files")
        try:
            response = self._send("GET", path, params={"format": "json"})
        except XnatError:
            return False
        return response.status_code != 429 and response.status_code < 500

    def list_resource_files(self, experiment: Experiment, scan_id: str, resource_id: str) -> dict[str, RemoteFile]:
        """One listing instead of a download per file; keyed by path relative to the resource."""
        path = self._scan_path(experiment, scan_id, "resources", resource_id, "files")
        response = self.request("GET", path, "list the resource's files", ok=(200, 404), params={"format": "json"})
        if response.status_code == 404:
            return {}
        files: dict[str, RemoteFile] = {}
        for row in self._result_rows(response, "listing"):
            relative = _relative_path_from_uri(row.get("URI", ""))
            if relative is None:
                continue
            size = row.get("Size")
            files[relative] = RemoteFile(
                path=relative,
                size=int(size) if str(size).isdigit() else None,
                digest=(row.get("digest") or "").lower() or None,
                uri=row.get("URI", ""),
            )
        return files

    def check_file_exists_in_xnat(self, experiment: Experiment, scan_id: str, resource_id: str, path: str) -> bool:
        """The seed's check, answered from the listing instead of downloading the file."""
        return path in self.list_resource_files(experiment, scan_id, resource_id)

    def upload_file_to_xnat(
        self,
        experiment: Experiment,
        scan_id: str,
        resource_id: str,
        relative_path: str,
        open_body: Callable[[], Body],
        *,
        overwrite: bool = False,
        on_failed_attempt: Callable[[bool], None] | None = None,
        extract: bool = False,
        content_type: str = "application/octet-stream",
        retries_on_500: int | None = None,
    ) -> str:
        """Stream one body into the resource; returns the file's clean URL.

        `open_body` is called once per attempt, so a retry never re-sends a consumed stream.
        `on_failed_attempt(may_have_stored)` follows every failed attempt: one that failed late may
        still have written its bytes to XNAT's disk (its catalog conflict), which the caller must
        know to decide about `overwrite` later. Retries never add `overwrite=true` on their own: a
        `duplicates` answer is returned to the caller (XnatDuplicateError) to resolve.
        """
        params = {"inbody": "true"}
        if overwrite:
            params["overwrite"] = "true"
        if extract:
            params["extract"] = "true"

        response = self.request(
            "PUT",
            self._file_path(experiment, scan_id, resource_id, relative_path),
            f"upload {relative_path!r}",
            params=params,
            open_body=open_body,
            headers={"Content-Type": content_type},
            on_failed_attempt=on_failed_attempt,
            retries_on_500=retries_on_500,
        )
        duplicates = _duplicates(response)
        if duplicates:
            raise XnatDuplicateError(
                redact(f"XNAT kept its existing copy of {duplicates} and ignored the upload"),
                response.status_code,
                duplicates,
            )
        return self.file_url(experiment, scan_id, resource_id, relative_path)


def _not_sent(exc: XnatUploadError) -> XnatUploadError:
    """Mark an error raised before a request went out: nothing of it can be on XNAT's disk."""
    exc.not_sent = True  # type: ignore[attr-defined]
    return exc


def may_have_stored(outcome: requests.Response | BaseException) -> bool:
    """Could a failed attempt have left what it sent on XNAT's disk?

    Yes after a 500 (XNAT's catalog conflict writes the bytes first), a 502 or 504 (a proxy gave up
    waiting; XNAT may have finished), and a connection cut or a timeout once the request went out.
    No after an answer that refuses before storing (401, 403, 429, 503 and the other 4xx) or a
    connection that was never made.
    """
    if isinstance(outcome, requests.Response):
        return outcome.status_code in (500, 502, 504)
    cause: BaseException | None = outcome
    while cause is not None:
        if isinstance(cause, requests.exceptions.ConnectTimeout | urllib3.exceptions.NewConnectionError):
            return False
        if isinstance(cause, requests.exceptions.ConnectionError) and "refused" in str(cause).lower():
            return False
        cause = cause.__cause__ or cause.__context__
    return True


class _Blocks:
    """An iterable-only view of a body: requests then sends each block with one `sendall`
    (with only `read`, urllib3 would pull 16 KiB at a time), Content-Length still from `len`."""

    def __init__(self, body: Body) -> None:
        self._body = body

    def __len__(self) -> int:
        return len(self._body)

    def __iter__(self) -> Any:
        return iter(self._body)  # type: ignore[call-overload]


def _as_blocks(body: Body | None) -> Body | _Blocks | None:
    return _Blocks(body) if body is not None and hasattr(body, "__iter__") else body


# What POST /data/JSESSION answers: the bare session id (Tomcat: hex, maybe with a ".route" suffix).
_SESSION_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._~+/=-]{7,255}")
# An HTML page asking someone to log in (an SSO or login page answering instead of XNAT).
_LOGIN_PAGE = re.compile(
    rb"""(?i)type\s*=\s*["']?password|\blog\s?in\b|\bsign\s?in\b|\bsaml|\bopenid|\boauth|\bsso\b"""
)


def _is_login_page(response: requests.Response) -> bool:
    head = response.content[:65536]
    html = b"<html" in head[:1024].lower() or head.lstrip()[:15].lower().startswith(b"<!doctype html")
    return html and _LOGIN_PAGE.search(head) is not None


# Anchored on the resource: a scan or resource called "files" must not be taken for the marker.
_FILE_URI = re.compile(r"/scans/[^/]+/resources/[^/]+/files/(.+)$")


def _relative_path_from_uri(uri: str) -> str | None:
    """`/data/experiments/E/scans/1/resources/7/files/a/b.nii` -> `a/b.nii` (Name is only the basename).

    Unquoting is safe because accepted paths never contain `%` (manifest/paths.py): whether XNAT
    writes a space raw or as `%20` in the URI, the same relative path comes back, and a name XNAT
    stored literally with an escape cannot be mistaken for one of ours.
    """
    match = _FILE_URI.search(urlsplit(uri).path)
    return (unquote(match.group(1)) or None) if match else None


def _duplicates(response: requests.Response) -> list[str]:
    """XNAT's 200 answer for a file it kept instead of replacing: `{"duplicates": [...]}`."""
    text = response.text.strip() if response.content else ""
    if not text.startswith("{"):
        return []
    try:
        document = safe_json.loads(text)
    except ValueError:
        return []
    duplicates = document.get("duplicates") if isinstance(document, dict) else None
    return [str(d) for d in duplicates] if isinstance(duplicates, list) else []  # matched to paths: not redacted


def _error_detail(response: requests.Response, limit: int = 300) -> str:
    """A short, safe excerpt of an error body (XNAT puts the message in an HTML <h3>).

    Redacted before and after it is cut to one line: XNAT's and proxies' error pages can echo the
    request's headers and cookies (session id, Basic credentials).
    """
    text = redact(response.text or "")
    start = text.find("<h3>")
    if start >= 0:
        end = text.find("</h3>", start)
        text = text[start + 4 : end if end > 0 else None]
    text = redact(" ".join(text.split()))[:limit]
    return f": {text}" if text else ""


def _redact(path: str) -> str:
    return path.split("?", 1)[0]
