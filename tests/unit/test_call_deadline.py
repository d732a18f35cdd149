"""A call deadline cuts a request that a server trickles, in either direction, and only that request."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest
import requests

from devserver.xnat_emulator import XnatEmulator
from xnat_upload.xnat.deadline import CallDeadline, DeadlineAdapter


@pytest.fixture
def xnat() -> Iterator[XnatEmulator]:
    with XnatEmulator() as emulator:
        yield emulator


@pytest.fixture
def session() -> Iterator[requests.Session]:
    with requests.Session() as http:
        http.mount("http://", DeadlineAdapter(max_retries=0))
        http.auth = ("admin", "admin")
        yield http


def test_a_trickled_answer_is_cut_when_the_deadline_passes(xnat: XnatEmulator, session: requests.Session) -> None:
    xnat.trickle_response_next(20, path_contains="/data/projects")  # every read progresses: no timeout fires
    started = time.monotonic()
    with pytest.raises(requests.RequestException), CallDeadline(0.5) as deadline:
        session.get(xnat.url + "/data/projects", params={"format": "json"}, timeout=(5, 5))
    assert deadline.expired
    assert 0.4 < time.monotonic() - started < 2


def test_a_body_read_slowly_is_cut_when_the_deadline_passes(xnat: XnatEmulator, session: requests.Session) -> None:
    xnat.add_project("P")
    xnat.add_experiment("P", "S", "E")
    xnat.add_scan("P", "E", "1")
    xnat.read_body_slowly_next(64 * 1024, method="PUT")
    url = xnat.url + "/data/projects/P/subjects/S/experiments/E/scans/1/resources/R/files/a.nii?inbody=true"
    started = time.monotonic()
    with pytest.raises(requests.RequestException), CallDeadline(0.5) as deadline:
        session.put(url, data=b"x" * (8 * 1024 * 1024), timeout=(5, 5))
    assert deadline.expired
    assert time.monotonic() - started < 2


def test_a_call_that_ends_in_time_is_untouched_and_the_pooled_connection_stays_usable(
    xnat: XnatEmulator, session: requests.Session
) -> None:
    with CallDeadline(5) as deadline:
        assert session.get(xnat.url + "/data/projects", params={"format": "json"}, timeout=5).status_code == 200
    assert not deadline.expired
    assert session.get(xnat.url + "/data/projects", params={"format": "json"}, timeout=5).status_code == 200


def test_a_deadline_cuts_only_its_own_threads_request(xnat: XnatEmulator, session: requests.Session) -> None:
    xnat.trickle_response_next(20, path_contains="/data/projects")
    xnat.set_delay(1.0, path_contains="/data/JSESSION")  # the other thread's call outlives the deadline
    other: list[int] = []

    def unbounded_call() -> None:
        other.append(session.post(xnat.url + "/data/JSESSION", timeout=5).status_code)

    thread = threading.Thread(target=unbounded_call)
    thread.start()
    with pytest.raises(requests.RequestException), CallDeadline(0.3):
        session.get(xnat.url + "/data/projects", params={"format": "json"}, timeout=5)
    thread.join(timeout=5)
    assert other == [200]


def test_a_socket_registered_after_the_deadline_is_shut_at_once() -> None:
    import socket

    left, right = socket.socketpair()
    with left, right, CallDeadline(0) as deadline:
        deadline._timer.join(timeout=1)  # the timer has fired
        deadline.watch(left)
        assert left.recv(1) == b"", "shut down: reads see the end at once"
