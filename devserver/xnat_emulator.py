"""An XNAT double: a real HTTP server on loopback that enforces /work/shared/xnat-rest-contract.md.

Every integration test, the local demo and the benchmark talk to it over real sockets. It is strict
where real XNAT is strict (401 without a session, 404 for unknown objects, 409 for an existing
resource, 200 + `duplicates` and no change for an existing file without `overwrite=true`, the
`%20`/`%2B` path-decoding rule, the catalog conflict when two PUTs into one resource overlap, zip
extraction as Java's `ZipInputStream` does it) and it can inject faults on demand.

Example::

    with XnatEmulator() as xnat:
        xnat.add_project("PRJ001", secondary_id="CHP-001")
        xnat.add_experiment("PRJ001", "SUBJ001", "ACC0001")
        ...  # point the client at xnat.url (admin/admin)

Process mode::

    python -m devserver.xnat_emulator --port 8080 --seed demo
"""

from __future__ import annotations

import argparse
import base64
import binascii
import contextlib
import gzip
import hashlib
import html
import io
import json
import secrets
import signal
import socket
import socketserver
import sys
import tarfile
import threading
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from http.cookies import CookieError, SimpleCookie
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, unquote, unquote_plus, urlsplit

CHUNK = 64 * 1024
LOGIN_FAILED = "Login attempt failed. Please try again."
SSO_LOGIN_PAGE = (
    b"<!DOCTYPE html><html><head><title>Sign in - Example University SSO</title></head><body>"
    b'<form method="post" action="/idp/profile/SAML2/Redirect/SSO"><label>Username <input name="j_username"></label>'
    b'<label>Password <input type="password" name="j_password"></label><button>Sign in</button></form>'
    b"</body></html>"
)
ZIP_DATA_DESCRIPTOR = 0x08  # general-purpose flag bit 3: sizes and CRC come after the data
_ZIP_NAMES = (".zip", ".zar", ".xar")
_TAR_NAMES = (".tar.gz", ".tgz", ".tar")


@dataclass(frozen=True)
class RequestRecord:
    """One request as the server saw it (status 0: the connection was dropped without an answer)."""

    method: str
    path: str  # raw, undecoded, without the query string
    query: dict[str, str]
    status: int
    has_cookie: bool
    body_bytes: int


# -- model ---------------------------------------------------------------------------------------


@dataclass
class _Blob:
    data: bytes | bytearray  # never mutated once stored
    md5: str


@dataclass
class _Resource:
    pk: int
    label: str
    format: str = ""
    content: str = ""
    version: int = 0  # bumped on every catalog write
    disk: dict[str, _Blob] = field(default_factory=dict)  # every file written, catalogued or not
    catalog: dict[str, _Blob] = field(default_factory=dict)  # the entries as catalogued (size, digest)


@dataclass
class _Scan:
    id: str
    xsi_type: str
    type: str = ""
    resources: dict[str, _Resource] = field(default_factory=dict)

    def resource(self, label: str) -> _Resource | None:
        found = self.resources.get(label)
        if found is None and label.isdigit():  # listing URIs name the resource by its primary key
            found = next((r for r in self.resources.values() if r.pk == int(label)), None)
        return found


@dataclass
class _Subject:
    id: str
    label: str
    project: str


@dataclass
class _Experiment:
    id: str
    label: str
    project: str
    subject: _Subject
    xsi_type: str
    scans: dict[str, _Scan] = field(default_factory=dict)


@dataclass
class _Project:
    id: str
    secondary_id: str
    name: str
    description: str = ""
    pi_firstname: str = ""
    pi_lastname: str = ""
    subjects: dict[str, _Subject] = field(default_factory=dict)  # by label
    experiments: dict[str, _Experiment] = field(default_factory=dict)  # by label

    def experiment(self, label_or_id: str) -> _Experiment | None:
        found = self.experiments.get(label_or_id)
        if found is None:
            found = next((e for e in self.experiments.values() if e.id == label_or_id), None)
        return found


@dataclass
class _Rule:
    kind: str  # "fail" | "drop" | "delay" | "delay_once" | "call" | "conflict" | "refuse" | "trickle" | "slow_read"
    method: str | None
    path_contains: str | None
    remaining: int = 1
    status: int = 500
    body: str = ""
    after_bytes: int = 0
    seconds: float = 0.0
    rate: float = 0.0  # "trickle", "slow_read": bytes per second
    callback: Callable[[], object] | None = None
    skip: int = 0  # "call": matching requests to let pass before the callback fires

    def matches(self, method: str, path: str) -> bool:
        if self.method is not None and self.method.upper() != method.upper():
            return False
        return self.path_contains is None or self.path_contains in path


class _HttpError(Exception):
    def __init__(self, status: int, message: str, headers: tuple[tuple[str, str], ...] = ()) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers


class _Dropped(Exception):
    """The connection is gone (or was dropped on purpose): close it without an answer."""


def _flag(query: dict[str, str], name: str) -> bool:
    """XNAT's boolean query flags: present with any value except false/0 means true."""
    if name not in query:
        return False
    return query[name].strip().lower() not in ("false", "0")


def _html(message: str) -> bytes:
    return f"<html><body><h3>{html.escape(message, quote=False)}</h3></body></html>".encode()


def _md5(data: bytes | bytearray | memoryview) -> str:
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


def _check_relative(path: str, what: str) -> str:
    if not path or path.startswith("/") or "\\" in path or any(s in ("", ".", "..") for s in path.split("/")):
        raise _HttpError(400, f"invalid {what}: {path!r}")
    return path


# -- the emulator --------------------------------------------------------------------------------


class XnatEmulator:
    """A threaded XNAT double on loopback; see the module docstring."""

    def __init__(
        self,
        username: str = "admin",
        password: str = "admin",  # noqa: S107 - a local test double's well-known default
        host: str = "127.0.0.1",
        port: int = 0,
        catalog_write_latency: float = 0.0,
        catalog_conflicts: bool = True,
        checksums: bool = True,
        cheap_extraction: bool = False,
    ) -> None:
        self.username = username
        self.password = password
        self.host = host
        self.port = port
        self.catalog_write_latency = float(catalog_write_latency)
        self.catalog_conflicts = catalog_conflicts
        self.checksums = checksums  # XNAT's `checksums` site setting: off, listings carry no digest
        # Benchmarks: an archive's own bytes are not hashed on receipt (only its entries are, for the
        # catalog), so that extracting a stored zip costs little more than copying its entries.
        self.cheap_extraction = cheap_extraction
        self._lock = threading.RLock()  # the model; never held while reading a body or sleeping
        self._meta = threading.Condition(threading.RLock())  # sessions, log, faults, counters
        self._projects: dict[str, _Project] = {}
        self._next_subject = 0
        self._next_experiment = 0
        self._next_resource = 0
        self._sessions: set[str] = set()
        self._max_sessions = 0
        self._received: dict[str, int] = {}  # relative path -> times its bytes arrived (raw or zipped)
        self._issued_sessions: list[str] = []
        self._logins = 0
        self._failed_logins = 0
        self._logouts = 0
        self._log: list[RequestRecord] = []
        self._rules: list[_Rule] = []
        self._down = False
        self._echo_requests = False
        self._sso_login_page = False
        self._inflight_puts = 0
        self._max_inflight_puts = 0
        self._conflicts = 0
        self._stopping = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -----------------------------------------------------------------------------

    def start(self) -> XnatEmulator:
        if self._server is not None:
            return self
        self._stopping.clear()
        self._server = _Server((self.host, self.port), _Handler, self)
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name="xnat-emulator", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        self._stopping.set()  # wakes every injected delay and catalog latency
        server.shutdown()
        server.server_close()
        server.close_connections()  # keep-alive connections would otherwise outlive the server
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> XnatEmulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("the emulator is not running")
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    # -- seeding -------------------------------------------------------------------------------

    def add_project(self, project_id: str, secondary_id: str | None = None, name: str | None = None) -> None:
        with self._lock:
            if project_id in self._projects:
                raise ValueError(f"project {project_id!r} exists")
            self._projects[project_id] = _Project(project_id, secondary_id or "", name or project_id)

    def add_experiment(
        self, project_id: str, subject_label: str, experiment_label: str, xsi_type: str = "xnat:mrSessionData"
    ) -> str:
        with self._lock:
            project = self._project(project_id)
            subject = project.subjects.get(subject_label)
            if subject is None:
                self._next_subject += 1
                subject = _Subject(f"XNAT_S{self._next_subject:05d}", subject_label, project_id)
                project.subjects[subject_label] = subject
            existing = project.experiments.get(experiment_label)
            if existing is not None:
                if existing.subject is not subject:
                    raise ValueError(f"experiment {experiment_label!r} belongs to subject {existing.subject.label!r}")
                return existing.id
            self._next_experiment += 1
            experiment = _Experiment(
                f"XNAT_E{self._next_experiment:05d}", experiment_label, project_id, subject, xsi_type
            )
            project.experiments[experiment_label] = experiment
            return experiment.id

    def add_scan(self, project_id: str, experiment_label: str, scan_id: str, xsi_type: str = "xnat:mrScanData") -> None:
        with self._lock:
            experiment = self._experiment(project_id, experiment_label)
            experiment.scans.setdefault(scan_id, _Scan(scan_id, xsi_type))

    def add_resource(self, project_id: str, experiment_label: str, scan_id: str, resource_label: str) -> None:
        with self._lock:
            self._seed_resource(project_id, experiment_label, scan_id, resource_label)

    def add_file(
        self,
        project_id: str,
        experiment_label: str,
        scan_id: str,
        resource_label: str,
        relative_path: str,
        content: bytes,
    ) -> None:
        _check_relative(relative_path, "file path")
        blob = _Blob(bytes(content), _md5(content))
        with self._lock:
            resource = self._seed_resource(project_id, experiment_label, scan_id, resource_label)
            resource.disk[relative_path] = blob
            resource.catalog[relative_path] = blob
            resource.version += 1

    def add_uncatalogued_file(
        self,
        project_id: str,
        experiment_label: str,
        scan_id: str,
        resource_label: str,
        relative_path: str,
        content: bytes,
    ) -> None:
        """Bytes on the resource's disk that no catalog lists: what another writer's PUT leaves while
        it is in flight, or after it failed its catalog write."""
        _check_relative(relative_path, "file path")
        with self._lock:
            resource = self._seed_resource(project_id, experiment_label, scan_id, resource_label)
            resource.disk[relative_path] = _Blob(bytes(content), _md5(content))

    def _seed_resource(self, project_id: str, experiment_label: str, scan_id: str, label: str) -> _Resource:
        experiment = self._experiment(project_id, experiment_label)
        scan = experiment.scans.setdefault(scan_id, _Scan(scan_id, "xnat:mrScanData"))
        resource = scan.resource(label)
        if resource is None:
            resource = self._new_resource(scan, label)
        return resource

    def _new_resource(self, scan: _Scan, label: str, fmt: str = "", content: str = "") -> _Resource:
        self._next_resource += 1
        resource = _Resource(self._next_resource, label, fmt, content)
        scan.resources[label] = resource
        return resource

    def _project(self, project_id: str) -> _Project:
        project = self._projects.get(project_id)
        if project is None:
            raise KeyError(f"no project {project_id!r}")
        return project

    def _experiment(self, project_id: str, experiment_label: str) -> _Experiment:
        experiment = self._project(project_id).experiment(experiment_label)
        if experiment is None:
            raise KeyError(f"no experiment {experiment_label!r} in project {project_id!r}")
        return experiment

    def _find_resource(self, project_id: str, experiment_label: str, scan_id: str, label: str) -> _Resource | None:
        project = self._projects.get(project_id)
        experiment = project.experiment(experiment_label) if project else None
        scan = experiment.scans.get(scan_id) if experiment else None
        return scan.resource(label) if scan else None

    # -- inspection ----------------------------------------------------------------------------

    def get_file(
        self, project_id: str, experiment_label: str, scan_id: str, resource_label: str, relative_path: str
    ) -> bytes | None:
        """The bytes of a catalogued file (None when it is missing or only on disk)."""
        with self._lock:
            resource = self._find_resource(project_id, experiment_label, scan_id, resource_label)
            if resource is None or relative_path not in resource.catalog:
                return None
            return bytes(resource.disk[relative_path].data)

    def list_files(self, project_id: str, experiment_label: str, scan_id: str, resource_label: str) -> dict[str, bytes]:
        with self._lock:
            resource = self._find_resource(project_id, experiment_label, scan_id, resource_label)
            if resource is None:
                return {}
            return {path: bytes(resource.disk[path].data) for path in sorted(resource.catalog)}

    def disk_files(self, project_id: str, experiment_label: str, scan_id: str, resource_label: str) -> dict[str, bytes]:
        """Everything written into the resource's folder, catalogued or not (e.g. after a conflict)."""
        with self._lock:
            resource = self._find_resource(project_id, experiment_label, scan_id, resource_label)
            if resource is None:
                return {}
            return {path: bytes(blob.data) for path, blob in sorted(resource.disk.items())}

    def resource_exists(self, project_id: str, experiment_label: str, scan_id: str, resource_label: str) -> bool:
        with self._lock:
            return self._find_resource(project_id, experiment_label, scan_id, resource_label) is not None

    def scan_type(self, project_id: str, experiment_label: str, scan_id: str) -> str | None:
        """The scan's xsi type (e.g. `xnat:mrScanData`), None when the scan does not exist."""
        with self._lock:
            project = self._projects.get(project_id)
            experiment = project.experiment(experiment_label) if project else None
            scan = experiment.scans.get(scan_id) if experiment else None
            return scan.xsi_type if scan else None

    @property
    def requests_log(self) -> list[RequestRecord]:
        with self._meta:
            return list(self._log)

    def count(self, method: str | None = None, path_contains: str | None = None) -> int:
        rule = _Rule("count", method, path_contains)
        with self._meta:
            return sum(1 for record in self._log if rule.matches(record.method, record.path))

    @property
    def writes(self) -> list[RequestRecord]:
        """Every request that could change XNAT's data: PUT, POST, DELETE, PATCH (log in and out excepted)."""
        with self._meta:
            return [
                r for r in self._log if r.method in ("PUT", "POST", "DELETE", "PATCH") and "/JSESSION" not in r.path
            ]

    @property
    def logins(self) -> int:
        with self._meta:
            return self._logins

    @property
    def failed_logins(self) -> int:
        """Requests that presented wrong credentials (what an account lock-out policy counts)."""
        with self._meta:
            return self._failed_logins

    @property
    def logouts(self) -> int:
        with self._meta:
            return self._logouts

    @property
    def session_ids(self) -> list[str]:
        """Every JSESSIONID value this emulator has issued, in order (also the ended ones)."""
        with self._meta:
            return list(self._issued_sessions)

    @property
    def active_sessions(self) -> int:
        with self._meta:
            return len(self._sessions)

    @property
    def max_active_sessions(self) -> int:
        """The most sessions open at once: how many clients worked on this XNAT concurrently."""
        with self._meta:
            return self._max_sessions

    def times_received(self, relative_path: str | None = None) -> dict[str, int]:
        """How often each file's bytes arrived in a PUT body, raw or as a zip entry (duplicates too)."""
        with self._meta:
            if relative_path is not None:
                return {relative_path: self._received.get(relative_path, 0)}
            return dict(self._received)

    @property
    def max_concurrent_file_puts(self) -> int:
        with self._meta:
            return self._max_inflight_puts

    @property
    def catalog_conflicts_count(self) -> int:
        with self._meta:
            return self._conflicts

    def wait_for_file_puts_in_flight(self, n: int, timeout: float = 5.0) -> bool:
        """Block until at least `n` file PUTs have taken their catalog snapshot and are in flight."""
        with self._meta:
            return self._meta.wait_for(lambda: self._inflight_puts >= n, timeout)

    # -- fault injection -----------------------------------------------------------------------

    def fail_next(
        self,
        status: int,
        times: int = 1,
        method: str | None = None,
        path_contains: str | None = None,
        body: str = "injected fault",
    ) -> None:
        with self._meta:
            self._rules.append(_Rule("fail", method, path_contains, remaining=times, status=status, body=body))

    def drop_connection_next(
        self,
        times: int = 1,
        method: str | None = "PUT",
        path_contains: str | None = "/files/",
        after_bytes: int = 1024,
    ) -> None:
        with self._meta:
            self._rules.append(_Rule("drop", method, path_contains, remaining=times, after_bytes=after_bytes))

    def refuse_file(self, name_contains: str, status: int = 500, message: str = "could not store the file") -> None:
        """A poison file: every PUT carrying a file whose path contains `name_contains`, raw or as an
        archive entry, fails with `status` and stores nothing (as when XNAT chokes on one file)."""
        with self._meta:
            self._rules.append(_Rule("refuse", "PUT", name_contains, status=status, body=message))

    def conflict_next(self, times: int = 1, path_contains: str | None = "/files/") -> None:
        """The next matching file PUTs lose a catalog race, deterministically: their bytes land on disk,
        the catalog is not written, and XNAT answers 500 ConcurrentModificationException, exactly as
        when another writer's catalog write came first."""
        with self._meta:
            self._rules.append(_Rule("conflict", "PUT", path_contains, remaining=times))

    def set_delay(self, seconds: float, method: str | None = None, path_contains: str | None = None) -> None:
        """Sleep `seconds` before answering matching requests; 0 removes the rule for that filter."""
        with self._meta:
            self._rules = [
                r
                for r in self._rules
                if not (r.kind == "delay" and r.method == method and r.path_contains == path_contains)
            ]
            if seconds > 0:
                self._rules.append(_Rule("delay", method, path_contains, seconds=float(seconds)))

    def delay_next(
        self, seconds: float, times: int = 1, method: str | None = None, path_contains: str | None = None
    ) -> None:
        """Sleep `seconds` before answering the next `times` matching requests only (then answer normally)."""
        with self._meta:
            self._rules.append(_Rule("delay_once", method, path_contains, remaining=times, seconds=float(seconds)))

    def on_request(
        self,
        callback: Callable[[], object],
        method: str | None = None,
        path_contains: str | None = None,
        times: int = 1,
        skip: int = 0,
        after_body_bytes: int = 0,
    ) -> None:
        """Call `callback()` when a matching request arrives, before XNAT looks at it.

        The first `skip` matching requests pass untouched; the callback then runs for the next
        `times` ones, in the server thread that handles the request (the client is waiting for
        the answer, so what the callback does is ordered before the request's effect). With
        `after_body_bytes`, it runs once that much of the request's body has arrived instead
        (mid-body: e.g. a client killed while it sends), before XNAT has stored anything.
        """
        with self._meta:
            self._rules.append(
                _Rule(
                    "call",
                    method,
                    path_contains,
                    remaining=times,
                    callback=callback,
                    skip=max(0, skip),
                    after_bytes=max(0, after_body_bytes),
                )
            )

    def change_password(self, password: str) -> None:
        """A password rotation: new logins need `password`; sessions already open stay valid."""
        with self._meta:
            self.password = password

    def expire_sessions(self) -> None:
        with self._meta:
            self._sessions.clear()

    def expire_sessions_after(
        self, n_requests: int, method: str | None = None, path_contains: str | None = None
    ) -> None:
        """Let `n_requests` matching requests through, then expire every session as the next one arrives."""
        self.on_request(self.expire_sessions, method, path_contains, times=1, skip=n_requests)

    def set_catalog_write_latency(self, seconds: float) -> None:
        self.catalog_write_latency = float(seconds)

    def trickle_response_next(
        self, bytes_per_second: float, times: int = 1, method: str | None = None, path_contains: str | None = None
    ) -> None:
        """Send the whole answer (status line, headers, body) of the next `times` matching requests
        at `bytes_per_second`: every socket read on the client side makes progress, so socket
        timeouts never fire. The connection is closed afterwards."""
        with self._meta:
            self._rules.append(_Rule("trickle", method, path_contains, remaining=times, rate=float(bytes_per_second)))

    def read_body_slowly_next(
        self,
        bytes_per_second: float,
        times: int = 1,
        method: str | None = "PUT",
        path_contains: str | None = "/files/",
    ) -> None:
        """Read the request body of the next `times` matching requests at `bytes_per_second` (an XNAT
        writing to a slow disk): the client's sends block and progress a little at a time."""
        with self._meta:
            self._rules.append(_Rule("slow_read", method, path_contains, remaining=times, rate=float(bytes_per_second)))

    def sso_login_page(self, enabled: bool = True) -> None:
        """A single sign-on front: every request, the login included, is answered 200 with an HTML login
        page and a session cookie of the SSO's own (what a misrouted service account meets)."""
        with self._meta:
            self._sso_login_page = enabled

    def echo_requests_in_errors(self, enabled: bool = True) -> None:
        """Every error page lists what the request carried: headers (Authorization and Cookie first),
        cookies and query, as XNAT's CSRF error does (session cookie included) and as a proxy's debug
        page may (Authorization included). Text a client must never store or log as it is."""
        with self._meta:
            self._echo_requests = enabled

    def set_down(self, down: bool) -> None:
        with self._meta:
            self._down = down

    def clear_faults(self) -> None:
        with self._meta:
            self._rules.clear()
            self._down = False

    # -- internals used by the handler -----------------------------------------------------------

    def _record(self, record: RequestRecord) -> None:
        with self._meta:
            self._log.append(record)

    def _delay_for(self, method: str, path: str) -> float:
        with self._meta:
            delay = max((r.seconds for r in self._rules if r.kind == "delay" and r.matches(method, path)), default=0)
            once = next((r for r in self._rules if r.kind == "delay_once" and r.matches(method, path)), None)
            if once is not None:
                once.remaining -= 1
                if once.remaining <= 0:
                    self._rules.remove(once)
                delay = max(delay, once.seconds)
            return delay

    def _run_callbacks(self, method: str, path: str) -> tuple[int, Callable[[], object]] | None:
        """Fire the `on_request` hooks matching this request (outside the lock: they may block);
        return a mid-body hook (`after_body_bytes`) for the handler to fire while it reads the body."""
        due: list[Callable[[], object]] = []
        mid_body: tuple[int, Callable[[], object]] | None = None
        with self._meta:
            for rule in list(self._rules):
                if rule.kind != "call" or not rule.matches(method, path):
                    continue
                if rule.skip > 0:
                    rule.skip -= 1
                    continue
                rule.remaining -= 1
                if rule.remaining <= 0:
                    self._rules.remove(rule)
                if rule.callback is not None and rule.after_bytes > 0:
                    mid_body = mid_body or (rule.after_bytes, rule.callback)
                elif rule.callback is not None:
                    due.append(rule.callback)
        for callback in due:
            callback()
        return mid_body

    def _take_fault(self, method: str, path: str) -> _Rule | None:
        with self._meta:
            for rule in self._rules:
                if rule.kind in ("fail", "drop") and rule.matches(method, path):
                    rule.remaining -= 1
                    if rule.remaining <= 0:
                        self._rules.remove(rule)
                    return rule
            return None

    def _refusal(self, paths: list[str]) -> _Rule | None:
        with self._meta:
            for rule in self._rules:
                if rule.kind == "refuse" and any(rule.path_contains in p for p in paths):
                    return rule
            return None

    def _take_conflict(self, path: str) -> bool:
        with self._meta:
            for rule in self._rules:
                if rule.kind == "conflict" and rule.matches("PUT", path):
                    rule.remaining -= 1
                    if rule.remaining <= 0:
                        self._rules.remove(rule)
                    return True
            return False

    def _take_throttle(self, kind: str, method: str, path: str) -> float | None:
        """The rate of the first `trickle` or `slow_read` rule matching this request, used up once."""
        with self._meta:
            for rule in self._rules:
                if rule.kind == kind and rule.matches(method, path):
                    rule.remaining -= 1
                    if rule.remaining <= 0:
                        self._rules.remove(rule)
                    return rule.rate
            return None

    def _sleep(self, seconds: float) -> None:
        if seconds > 0:
            self._stopping.wait(seconds)

    def _check_credentials(self, username: str, password: str) -> bool:
        with self._meta:
            expected_user, expected_password = self.username, self.password
        same_user = secrets.compare_digest(username.encode(), expected_user.encode())
        valid = secrets.compare_digest(password.encode(), expected_password.encode()) and same_user
        if not valid:
            with self._meta:
                self._failed_logins += 1
        return valid

    def _new_session(self) -> str:
        session_id = secrets.token_hex(16).upper()
        with self._meta:
            self._sessions.add(session_id)
            self._max_sessions = max(self._max_sessions, len(self._sessions))
            self._issued_sessions.append(session_id)
            self._logins += 1
        return session_id

    def _session_valid(self, session_id: str | None) -> bool:
        with self._meta:
            return session_id is not None and session_id in self._sessions

    def _end_session(self, session_id: str | None) -> None:
        with self._meta:
            if session_id is not None and session_id in self._sessions:
                self._sessions.discard(session_id)
                self._logouts += 1

    def _file_put_started(self) -> None:
        with self._meta:
            self._inflight_puts += 1
            self._max_inflight_puts = max(self._max_inflight_puts, self._inflight_puts)
            self._meta.notify_all()

    def _file_put_finished(self) -> None:
        with self._meta:
            self._inflight_puts -= 1
            self._meta.notify_all()

    def _count_received(self, paths: Any) -> None:
        with self._meta:
            for path in paths:
                self._received[path] = self._received.get(path, 0) + 1

    def _count_conflict(self) -> None:
        with self._meta:
            self._conflicts += 1


# -- HTTP ----------------------------------------------------------------------------------------


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler], emulator: XnatEmulator):
        self.emulator = emulator
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__(address, handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Quiet about clients that went away (dropped or reset connections); loud about real bugs."""
        if not isinstance(sys.exc_info()[1], OSError):
            super().handle_error(request, client_address)

    def server_bind(self) -> None:  # skip HTTPServer's reverse DNS lookup
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name, self.server_port = str(host), int(port)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._connections_lock:
            self._connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._connections_lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)


class _Throttled:
    """A socket file that moves at most `rate` bytes per second, a few at a time.

    Raises `_Dropped` when the emulator stops, so no server thread outlives it.
    """

    def __init__(self, stream: Any, rate: float, stopping: threading.Event) -> None:
        self._stream = stream
        self._rate = max(rate, 1.0)
        self._step = max(1, int(self._rate / 10))  # ten steps a second
        self._stopping = stopping

    def _pause(self, size: int) -> None:
        if self._stopping.wait(size / self._rate):
            raise _Dropped

    def write(self, data: bytes | bytearray | memoryview) -> int:
        view = memoryview(data).cast("B")
        for start in range(0, len(view), self._step):
            piece = view[start : start + self._step]
            self._stream.write(piece)
            self._pause(len(piece))
        return len(view)

    def read(self, size: int = -1) -> bytes:
        want = self._step if size is None or size < 0 else min(size, self._step)
        data = self._stream.read(want)
        if data:
            self._pause(len(data))
        return data

    def __getattr__(self, name: str) -> Any:  # readline, flush, close: untouched
        return getattr(self._stream, name)


@dataclass
class _Where:
    """A resolved /data/... path."""

    kind: str
    project: _Project | None = None
    experiment: _Experiment | None = None
    scan_id: str = ""
    resource: str = ""
    file_path: str = ""  # raw (undecoded) path after /files/


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: clients pool connections
    disable_nagle_algorithm = True  # headers and body go out in separate writes: no 40 ms delayed-ACK stalls
    server_version = "XNAT-emulator/1.0"
    sys_version = ""
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # quiet: no per-request stderr
        pass

    def do_GET(self) -> None:
        self._handle()

    do_PUT = do_POST = do_DELETE = do_PATCH = do_GET

    # -- request body --------------------------------------------------------------------------

    def _init_body(self) -> None:
        self._chunked = "chunked" in self.headers.get("Transfer-Encoding", "").lower()
        self._length: int | None = None
        self._left = 0
        self._chunk_left = 0
        self._body_read = 0
        length = self.headers.get("Content-Length")
        if not self._chunked and length is not None:
            try:
                self._length = int(length)
            except ValueError:
                self._length = -1
            if self._length < 0:
                self._body_done = True
                self.close_connection = True
                raise _HttpError(400, "invalid Content-Length")
            self._left = self._length
        self._body_done = not self._chunked and self._left == 0

    def _read_some(self, size: int) -> bytes:
        """Up to `size` bytes of the body (b"" at its end)."""
        if self._body_done:
            return b""
        if self._mid_body is not None:  # stop where the mid-body hook is due
            size = max(1, min(size, self._mid_body[0] - self._body_read))
        if self._chunked:
            if self._chunk_left == 0:
                line = self.rfile.readline(65537)
                if not line:
                    raise _Dropped
                try:
                    chunk = int(line.split(b";", 1)[0].strip(), 16)
                except ValueError:
                    self._body_done = True
                    self.close_connection = True
                    raise _HttpError(400, "malformed chunked body") from None
                if chunk == 0:
                    while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    self._body_done = True
                    return b""
                self._chunk_left = chunk
            data = self.rfile.read(min(size, self._chunk_left))
            if not data:
                raise _Dropped
            self._chunk_left -= len(data)
            if self._chunk_left == 0:
                self.rfile.readline(65537)  # the CRLF after the chunk
        else:
            data = self.rfile.read(min(size, self._left))
            if not data:
                raise _Dropped
            self._left -= len(data)
            self._body_done = self._left == 0
        self._body_read += len(data)
        if self._mid_body is not None and self._body_read >= self._mid_body[0]:
            callback, self._mid_body = self._mid_body[1], None
            callback()
        return data

    def _read_body(self, hashed: bool = True) -> _Blob:
        """The whole body, read in 64 KiB chunks into one buffer while hashing it (`hashed` false:
        not hashed, its MD5 is empty; for an archive whose own digest nobody reads)."""
        digest: Any = hashlib.md5(usedforsecurity=False) if hashed else _NoDigest()
        if self._length is not None:
            buffer = bytearray(self._length)
            offset = 0
            while not self._body_done:
                data = self._read_some(CHUNK)
                buffer[offset : offset + len(data)] = data
                digest.update(data)
                offset += len(data)
            return _Blob(buffer, digest.hexdigest())
        parts = []
        while data := self._read_some(CHUNK):
            parts.append(data)
            digest.update(data)
        return _Blob(b"".join(parts), digest.hexdigest())

    def _drain(self) -> None:
        while self._read_some(CHUNK):
            pass

    # -- responses -----------------------------------------------------------------------------

    def _send(
        self,
        status: int,
        body: bytes | bytearray | memoryview = b"",
        content_type: str | None = None,
        headers: tuple[tuple[str, str], ...] = (),
    ) -> None:
        if not self._body_done:
            try:
                self._drain()
            except (_HttpError, _Dropped, OSError):
                self.close_connection = True
        self.send_response(status)
        if content_type:
            self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in headers:
            self.send_header(name, value)
        if self._new_cookie:
            self.send_header("Set-Cookie", f"JSESSIONID={self._new_cookie}; Path=/; HttpOnly")
        if self.close_connection or not self._body_done:
            self.close_connection = True
            self.send_header("Connection", "close")
        self._status = status
        self._record()  # before the client can see the answer: tests read the log right after it
        self.end_headers()
        if body:
            self.wfile.write(body)

    def _send_json(self, document: Any) -> None:
        self._send(200, json.dumps(document).encode(), "application/json")

    def _send_error_page(self, error: _HttpError) -> None:
        message = error.message
        with self.server.emulator._meta:
            echo = self.server.emulator._echo_requests
        if echo:
            message += " " + self._echo()
        self._send(error.status, _html(message), "text/html;charset=UTF-8", error.headers)

    def _echo(self) -> str:
        """The request as an echoing error page shows it (see `echo_requests_in_errors`)."""
        sensitive = ("authorization", "cookie")
        headers = sorted(self.headers.items(), key=lambda item: item[0].lower() not in sensitive)
        lines = [f"{name}: {value}" for name, value in headers]
        cookies = SimpleCookie()
        with contextlib.suppress(CookieError):
            cookies.load(self.headers.get("Cookie", ""))
        lines.append("cookies: " + ", ".join(f"{name}={morsel.value}" for name, morsel in cookies.items()))
        lines.append("query: " + "&".join(f"{k}={v}" for k, v in self._log_query.items()))
        return f"Request {self.command} {self._log_path} with headers:\n" + "\n".join(lines)

    # -- dispatch ------------------------------------------------------------------------------

    def _handle(self) -> None:
        emulator = self.server.emulator
        target = self.path
        if "://" in target:  # absolute-form request target
            parts = urlsplit(target)
            target = parts.path + ("?" + parts.query if parts.query else "")
        path, _, raw_query = target.partition("?")
        query = dict(parse_qsl(raw_query, keep_blank_values=True))
        self._status = 0
        self._recorded = False
        self._log_path, self._log_query = path, query
        self._new_cookie: str | None = None
        self._body_done = True
        self._body_read = 0
        self._mid_body: tuple[int, Callable[[], object]] | None = None
        self._cookie = self._cookie_session()
        try:
            try:
                self._init_body()
                self._dispatch(emulator, path, query)
            except _HttpError as error:
                self._send_error_page(error)
        except _Dropped:
            self.close_connection = True
            self._status = 0
        except OSError:  # the client went away while we answered
            self.close_connection = True
        except Exception as exc:
            if self._status == 0:
                try:
                    self._send_error_page(_HttpError(500, f"{type(exc).__name__}: {exc}"))
                except OSError:
                    self.close_connection = True
        finally:
            self._record()

    def _record(self) -> None:
        if not self._recorded:
            self._recorded = True
            self.server.emulator._record(
                RequestRecord(
                    self.command,
                    self._log_path,
                    self._log_query,
                    self._status,
                    self._cookie is not None,
                    self._body_read,
                )
            )

    def _dispatch(self, emulator: XnatEmulator, path: str, query: dict[str, str]) -> None:
        method = self.command
        self._mid_body = emulator._run_callbacks(method, path)
        emulator._sleep(emulator._delay_for(method, path))
        for kind in ("trickle", "slow_read"):
            rate = emulator._take_throttle(kind, method, path)
            if rate is None:
                continue
            self.close_connection = True  # the throttled stream is not handed to the next request
            if kind == "trickle":
                self.wfile = _Throttled(self.wfile, rate, emulator._stopping)  # type: ignore[assignment]
            else:
                self.rfile = _Throttled(self.rfile, rate, emulator._stopping)  # type: ignore[assignment]
        with emulator._meta:
            down, sso = emulator._down, emulator._sso_login_page
        if sso:
            cookie = ("Set-Cookie", f"JSESSIONID={secrets.token_hex(16).upper()}; Path=/; HttpOnly")
            self._send(200, SSO_LOGIN_PAGE, "text/html;charset=UTF-8", (cookie,))
            return
        if down:
            raise _HttpError(503, "XNAT is unavailable")
        fault = emulator._take_fault(method, path)
        if fault is not None and fault.kind == "drop":
            if fault.after_bytes > 0:
                self._read_some(fault.after_bytes)
            self._record()
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            finally:
                self.connection.close()
            raise _Dropped
        if fault is not None:
            raise _HttpError(fault.status, fault.body)

        segments = path.split("/")
        if len(segments) < 3 or segments[0] != "" or segments[1] != "data":
            raise _HttpError(404, f"no such resource: {path}")
        rest = segments[2:]
        if rest == ["JSESSION"]:
            self._jsession(emulator, method)
            return
        if not emulator._session_valid(self._cookie):
            credentials = self._basic_credentials()
            if credentials is None or not emulator._check_credentials(*credentials):
                raise _HttpError(401, LOGIN_FAILED)
            self._new_cookie = emulator._new_session()  # Basic auth opens a new server session each time
        self._route(emulator, method, rest, query)

    # -- session -------------------------------------------------------------------------------

    def _cookie_session(self) -> str | None:
        header = self.headers.get("Cookie")
        if not header:
            return None
        try:
            cookie = SimpleCookie(header)
        except CookieError:
            return None
        morsel = cookie.get("JSESSIONID")
        return morsel.value if morsel is not None else None

    def _basic_credentials(self) -> tuple[str, str] | None:
        header = self.headers.get("Authorization", "")
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "basic":
            return None
        try:
            decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return None
        username, sep, password = decoded.partition(":")
        return (username, password) if sep else None

    def _jsession(self, emulator: XnatEmulator, method: str) -> None:
        if method in ("GET", "POST"):
            credentials = self._basic_credentials()
            if credentials is not None:
                if not emulator._check_credentials(*credentials):
                    raise _HttpError(401, LOGIN_FAILED)
                self._new_cookie = emulator._new_session()
                self._send(200, self._new_cookie.encode(), "text/plain")
            elif emulator._session_valid(self._cookie):
                self._send(200, str(self._cookie).encode(), "text/plain")
            else:
                raise _HttpError(401, LOGIN_FAILED)
        elif method == "DELETE":
            emulator._end_session(self._cookie)
            self._send(200)
        else:
            raise _HttpError(405, "method not allowed", (("Allow", "GET, POST, DELETE"),))

    # -- routing -------------------------------------------------------------------------------

    def _route(self, emulator: XnatEmulator, method: str, rest: list[str], query: dict[str, str]) -> None:
        with emulator._lock:
            where = self._resolve(emulator, rest)
        allowed = {
            "projects": ("GET",),
            "project": ("GET",),
            "experiment": ("GET",),
            "scans": ("GET",),
            "scan": ("GET", "PUT"),
            "resources": ("GET",),
            "resource": ("PUT",),
            "files": ("GET",),
            "file": ("GET", "PUT", "DELETE"),
        }[where.kind]
        if method not in allowed:
            raise _HttpError(405, f"{method} is not allowed here", (("Allow", ", ".join(allowed)),))
        if method == "GET" and where.kind != "file":
            _require_json(query)
        handler: Callable[[XnatEmulator, _Where, dict[str, str]], None] = {
            ("projects", "GET"): self._get_projects,
            ("project", "GET"): self._get_project,
            ("experiment", "GET"): self._get_experiment,
            ("scans", "GET"): self._get_scans,
            ("scan", "GET"): self._get_scan,
            ("scan", "PUT"): self._put_scan,
            ("resources", "GET"): self._get_resources,
            ("resource", "PUT"): self._put_resource,
            ("files", "GET"): self._get_files,
            ("file", "GET"): self._get_file,
            ("file", "PUT"): self._put_file,
            ("file", "DELETE"): self._delete_file,
        }[(where.kind, method)]
        handler(emulator, where, query)

    def _resolve(self, emulator: XnatEmulator, rest: list[str]) -> _Where:
        not_found = _HttpError(404, "no such resource: /data/" + "/".join(rest))
        if rest == ["projects"]:
            return _Where("projects")
        if len(rest) >= 2 and rest[0] == "projects":
            project = emulator._projects.get(unquote(rest[1]))
            if project is None:
                raise _HttpError(404, f"Unable to find project {unquote(rest[1])!r}")
            tail = rest[2:]
            if not tail:
                return _Where("project", project)
            subject = None
            if len(tail) >= 4 and tail[0] == "subjects" and tail[2] == "experiments":
                subject, label, tail = unquote(tail[1]), unquote(tail[3]), tail[4:]
            elif len(tail) >= 2 and tail[0] == "experiments":
                label, tail = unquote(tail[1]), tail[2:]
            else:
                raise not_found
            experiment = project.experiment(label)
            if experiment is None or subject not in (None, experiment.subject.id, experiment.subject.label):
                raise _HttpError(404, f"Unable to find experiment {label!r} in project {project.id!r}")
        elif len(rest) >= 2 and rest[0] == "experiments":
            experiment_id = unquote(rest[1])
            experiment = next(
                (e for p in emulator._projects.values() for e in p.experiments.values() if e.id == experiment_id),
                None,
            )
            if experiment is None:
                raise _HttpError(404, f"Unable to find experiment {experiment_id!r}")
            project, tail = emulator._projects[experiment.project], rest[2:]
        else:
            raise not_found
        if not tail:
            return _Where("experiment", project, experiment)
        if tail[0] != "scans":
            raise not_found
        if len(tail) == 1:
            return _Where("scans", project, experiment)
        scan_id, tail = unquote(tail[1]), tail[2:]
        if not scan_id:
            raise not_found
        if not tail:
            return _Where("scan", project, experiment, scan_id)
        if tail[0] != "resources":
            raise not_found
        if len(tail) == 1:
            return _Where("resources", project, experiment, scan_id)
        resource, tail = unquote(tail[1]), tail[2:]
        if not resource:
            raise not_found
        if not tail:
            return _Where("resource", project, experiment, scan_id, resource)
        if tail[0] != "files":
            raise not_found
        if len(tail) == 1:
            return _Where("files", project, experiment, scan_id, resource)
        return _Where("file", project, experiment, scan_id, resource, "/".join(tail[1:]))

    # -- lookups -------------------------------------------------------------------------------

    def _get_projects(self, emulator: XnatEmulator, where: _Where, query: dict[str, str]) -> None:
        with emulator._lock:
            projects = list(emulator._projects.values())
        if "secondary_ID" in query:
            projects = [p for p in projects if p.secondary_id == query["secondary_ID"]]
        rows = [
            {
                "ID": p.id,
                "secondary_ID": p.secondary_id,
                "name": p.name,
                "description": p.description,
                "pi_firstname": p.pi_firstname,
                "pi_lastname": p.pi_lastname,
                "URI": f"/data/projects/{p.id}",
            }
            for p in projects
        ]
        self._send_json({"ResultSet": {"Result": rows, "totalRecords": str(len(rows))}})

    def _get_project(self, emulator: XnatEmulator, where: _Where, query: dict[str, str]) -> None:
        project = where.project
        assert project is not None
        fields = {"ID": project.id, "secondary_ID": project.secondary_id, "name": project.name}
        self._send_json(
            {"items": [{"data_fields": fields, "meta": {"xsi:type": "xnat:projectData", "isHistory": False}}]}
        )

    def _get_experiment(self, emulator: XnatEmulator, where: _Where, query: dict[str, str]) -> None:
        e = where.experiment
        assert e is not None
        fields = {"ID": e.id, "label": e.label, "project": e.project, "subject_ID": e.subject.id}
        item = {"data_fields": fields, "meta": {"xsi:type": e.xsi_type, "isHistory": False}, "children": []}
        self._send_json({"items": [item]})

    # -- scans and resources -------------------------------------------------------------------

    def _scan(self, where: _Where) -> _Scan:
        assert where.experiment is not None
        scan = where.experiment.scans.get(where.scan_id)
        if scan is None:
            raise _HttpError(404, f"Unable to find scan {where.scan_id!r}")
        return scan

    def _get_scans(self, emulator: XnatEmulator, where: _Where, query: dict[str, str]) -> None:
        e = where.experiment
        assert e is not None
        with emulator._lock:
            rows = [
                {"ID": s.id, "type": s.type, "xsiType": s.xsi_type, "URI": f"/data/experiments/{e.id}/scans/{s.id}"}
                for s in e.scans.values()
            ]
        self._send_json({"ResultSet": {"Result": rows, "totalRecords": str(len(rows))}})

    def _get_scan(self, emulator: XnatEmulator, where: _Where, query: dict[str, str]) -> None:
        with emulator._lock:
            scan = self._scan(where)
            fields = {"ID": scan.id, "type": scan.type}
            item = {"data_fields": fields, "meta": {"xsi:type": scan.xsi_type, "isHistory": False}, "children": []}
        self._send_json({"items": [item]})

    def _put_scan(self, emulator: XnatEmulator, where: _Where, query: dict[str, str]) -> None:
        assert where.experiment is not None
        xsi_type = query.get("xsiType", "")
        if xsi_type == "xnat:imageScanData":
            raise _HttpError(400, "xnat:imageScanData is abstract: give a concrete scan type")
        with emulator._lock:
            scan = where.experiment.scans.get(where.scan_id)
            if scan is None:
                if not xsi_type:
                    raise _HttpError(417, "Missing xsiType for a new scan")
                scan = _Scan(where.scan_id, xsi_type)
                where.experiment.scans[where.scan_id] = scan
            elif xsi_type and xsi_type != scan.xsi_type:
                raise _HttpError(409, f"scan {where.scan_id!r} is a {scan.xsi_type}, not a {xsi_type}")
            if "type" in query:
                scan.type = query["type"]
        self._send(200)

    def _get_resources(self, emulator: XnatEmulator, where: _Where, query: dict[str, str]) -> None:
        with emulator._lock:
            rows = [
                {
                    "xnat_abstractresource_id": str(r.pk),
                    "label": r.label,
                    "format": r.format,
                    "content": r.content,
                    "file_count": str(len(r.catalog)),
                    "file_size": str(sum(len(b.data) for b in r.catalog.values())),
                    "element_name": "xnat:resourceCatalog",
                }
                for r in self._scan(where).resources.values()
            ]
        self._send_json({"ResultSet": {"Result": rows, "totalRecords": str(len(rows))}})

    def _put_resource(self, emulator: XnatEmulator, where: _Where, query: dict[str, str]) -> None:
        with emulator._lock:
            scan = self._scan(where)
            if scan.resource(where.resource) is not None:
                raise _HttpError(409, f"resource {where.resource!r} already exists")
            emulator._new_resource(scan, where.resource, query.get("format", ""), query.get("content", ""))
        self._send(200)

    # -- files ---------------------------------------------------------------------------------

    def _resource(self, where: _Where) -> _Resource:
        resource = self._scan(where).resource(where.resource)
        if resource is None:
            raise _HttpError(404, f"Unable to find resource {where.resource!r}")
        return resource

    def _get_files(self, emulator: XnatEmulator, where: _Where, query: dict[str, str]) -> None:
        assert where.experiment is not None
        with emulator._lock:
            r = self._resource(where)
            prefix = f"/data/experiments/{where.experiment.id}/scans/{where.scan_id}/resources/{r.pk}/files/"
            rows = [
                {
                    "Name": path.rsplit("/", 1)[-1],
                    "Size": str(len(blob.data)),
                    "URI": prefix + path,
                    "collection": r.label,
                    "file_tags": "",
                    "file_format": "",
                    "file_content": "",
                    "cat_ID": str(r.pk),
                    "digest": blob.md5 if emulator.checksums else "",
                }
                for path, blob in sorted(r.catalog.items())
            ]
        self._send_json({"ResultSet": {"Result": rows, "title": "Files"}})

    def _get_file(self, emulator: XnatEmulator, where: _Where, query: dict[str, str]) -> None:
        path = _decode_file_path(where.file_path)
        with emulator._lock:
            resource = self._resource(where)
            if path not in resource.catalog:
                raise _HttpError(404, f"Unable to find file {path!r}")
            data = resource.disk[path].data
        self._send(200, memoryview(data), "application/octet-stream")

    def _delete_file(self, emulator: XnatEmulator, where: _Where, query: dict[str, str]) -> None:
        path = _decode_file_path(where.file_path)
        with emulator._lock:
            resource = self._resource(where)
            if path not in resource.catalog:
                raise _HttpError(404, f"Unable to find file {path!r}")
            del resource.catalog[path]
            resource.disk.pop(path, None)
            resource.version += 1
        self._send(200)

    def _put_file(self, emulator: XnatEmulator, where: _Where, query: dict[str, str]) -> None:
        with emulator._lock:
            self._scan(where)  # 404 before anything else
        if not _flag(query, "inbody"):
            raise _HttpError(400, "You didn't provide any data: upload the file as the body with inbody=true")
        content_type = self.headers.get("Content-Type", "").split(";", 1)[0].strip().lower()
        if not self._length and content_type != "application/zip":
            raise _HttpError(500, "request entity size is -1: send an exact Content-Length")
        path = _check_relative(_decode_file_path(where.file_path), "file path")
        overwrite = _flag(query, "overwrite")
        archive = _archive_kind(path) if _flag(query, "extract") else None

        with emulator._lock:  # (1) the catalog as this request first sees it
            resource = self._scan(where).resource(where.resource)
            snapshot = resource.version if resource is not None else 0
        emulator._file_put_started()
        try:
            blob = self._read_body(hashed=not (archive and emulator.cheap_extraction))  # (2) not holding a lock
            entries = _unpack(archive, path, blob) if archive else [(path, blob)]
            emulator._count_received(p for p, _ in entries)
            refusal = emulator._refusal([p for p, _ in entries])
            if refusal is not None:
                raise _HttpError(refusal.status, refusal.body)
            with emulator._lock:  # ... lands on disk
                scan = self._scan(where)
                resource = scan.resource(where.resource) or emulator._new_resource(scan, where.resource)
                duplicates = [p for p, _ in entries if p in resource.disk] if not overwrite else []
                added = [(p, b) for p, b in entries if p not in duplicates]
                for p, b in added:
                    resource.disk[p] = b
            if added:
                emulator._sleep(emulator.catalog_write_latency)  # (3)
                with emulator._lock:  # (4) one catalog write, only if nobody else wrote it meanwhile
                    lost_race = emulator._take_conflict(self._log_path)
                    if lost_race or (emulator.catalog_conflicts and resource.version != snapshot):
                        emulator._count_conflict()
                        raise _HttpError(500, "java.util.ConcurrentModificationException: catalog was modified")
                    for p, b in added:
                        resource.catalog[p] = b
                    resource.version += 1
        finally:
            emulator._file_put_finished()
        if duplicates:
            self._send(200, json.dumps({"duplicates": duplicates}).encode(), "text/html;charset=UTF-8")
        else:
            self._send(200)


class _NoDigest:
    def update(self, data: bytes) -> None:
        return None

    def hexdigest(self) -> str:
        return ""


def _require_json(query: dict[str, str]) -> None:
    if "format" in query and query["format"].lower() != "json":
        raise _HttpError(400, f"the emulator answers format=json only, not {query['format']!r}")


def _decode_file_path(raw: str) -> str:
    """XNAT URL-decodes a file path only when it contains %20 or %2B (with Java's URLDecoder: '+' is a space)."""
    lowered = raw.lower()
    return unquote_plus(raw) if "%20" in lowered or "%2b" in lowered else raw


def _archive_kind(name: str) -> str | None:
    lowered = name.lower()
    if lowered.endswith(_ZIP_NAMES):
        return "zip"
    if lowered.endswith(_TAR_NAMES):
        return "tar"
    if lowered.endswith(".gz"):
        return "gz"
    return None


def _unpack(kind: str, name: str, blob: _Blob) -> list[tuple[str, _Blob]]:
    """The archive's files as (relative path, blob); refuses what XNAT's extraction refuses."""
    entries: list[tuple[str, _Blob]] = []
    if kind == "gz":  # a lone .gz is gunzipped: why a .nii.gz must never be sent with extract=true
        try:
            data = gzip.decompress(blob.data)
        except (OSError, EOFError) as exc:
            raise _HttpError(400, f"invalid gzip: {exc}") from None
        return [(name[: -len(".gz")], _Blob(data, _md5(data)))]
    if kind == "tar":
        try:
            with tarfile.open(fileobj=io.BytesIO(blob.data), mode="r:*") as archive:
                for member in archive.getmembers():
                    if member.isdir():
                        continue
                    if not member.isfile():
                        raise _HttpError(400, f"invalid tar: {member.name!r} is not a regular file")
                    handle = archive.extractfile(member)
                    data = handle.read() if handle is not None else b""
                    entries.append((_check_relative(member.name, "archive entry"), _Blob(data, _md5(data))))
        except (tarfile.TarError, OSError, EOFError) as exc:
            raise _HttpError(400, f"invalid tar: {exc}") from None
        return entries
    try:
        with zipfile.ZipFile(io.BytesIO(blob.data)) as archive:
            for info in archive.infolist():
                if info.is_dir():
                    continue
                if info.compress_type == zipfile.ZIP_STORED and info.flag_bits & ZIP_DATA_DESCRIPTOR:
                    raise _HttpError(
                        400, f"invalid zip: only DEFLATED entries can have EXT descriptor ({info.filename!r})"
                    )
                path = _check_relative(info.filename, "zip entry")
                data = archive.read(info)
                entries.append((path, _Blob(data, _md5(data))))
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, OSError, EOFError) as exc:
        raise _HttpError(400, f"invalid zip: {exc}") from None
    return entries


# -- process mode --------------------------------------------------------------------------------


def seed_demo(emulator: XnatEmulator) -> None:
    """Project PRJ001 (secondary ID CHP-001), subject SUBJ001, experiment ACC0001."""
    emulator.add_project("PRJ001", secondary_id="CHP-001", name="Demo project")
    emulator.add_experiment("PRJ001", "SUBJ001", "ACC0001")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="A local XNAT emulator (see xnat-rest-contract.md).")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--username", default="admin")
    parser.add_argument("--password", default="admin")
    parser.add_argument("--seed", choices=("none", "demo"), default="none")
    parser.add_argument("--catalog-write-latency", type=float, default=0.0)
    args = parser.parse_args(argv)

    emulator = XnatEmulator(
        args.username, args.password, args.host, args.port, catalog_write_latency=args.catalog_write_latency
    )
    if args.seed == "demo":
        seed_demo(emulator)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    emulator.start()
    print(f"XNAT emulator listening on {emulator.url}", flush=True)
    try:
        while not stop.wait(0.2):
            pass
    finally:
        emulator.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
