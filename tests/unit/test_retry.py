"""Transient failures are retried for a time window with full-jitter backoff, never past the deadline."""

from __future__ import annotations

import pytest
import responses

from xnat_upload.config import Settings
from xnat_upload.exceptions import XnatError
from xnat_upload.xnat import RetryPolicy, XnatClient
from xnat_upload.xnat.session import open_xnat


class Clock:
    """Time that moves only when the policy sleeps."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.pauses: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.pauses.append(seconds)
        self.now += seconds


def policy(clock: Clock, **options: object) -> RetryPolicy:
    return RetryPolicy(sleep=clock.sleep, clock=clock, random=lambda: 1.0, **options)  # type: ignore[arg-type]


def retries_until_refused(retry: RetryPolicy, clock: Clock, reserve: float = 0.0) -> int:
    started, tries = clock(), 0
    while retry.wait(tries, started, reserve):
        tries += 1
    return tries


def test_the_window_not_a_count_decides_and_the_last_pause_ends_with_the_window() -> None:
    clock = Clock()
    retry = policy(clock, base_delay=0.5, max_delay=20.0, window_seconds=60.0)

    assert retries_until_refused(retry, clock) == 8  # 0.5 + 1 + 2 + 4 + 8 + 16 + 20, then 8.5 to the window's end
    assert clock.pauses == [0.5, 1, 2, 4, 8, 16, 20, 8.5]
    assert clock.now - 1000.0 == 60.0


def test_backoff_is_full_jitter_below_an_exponential_ceiling() -> None:
    clock = Clock()
    draws = iter([0.0, 0.5, 0.25, 1.0])
    retry = RetryPolicy(base_delay=1.0, max_delay=3.0, random=lambda: next(draws), sleep=clock.sleep, clock=clock)
    assert [retry.delay(n) for n in range(4)] == [0.0, 1.0, 0.75, 3.0]


def test_a_pause_never_ends_past_the_time_budget() -> None:
    clock = Clock()
    deadline = clock.now + 10.0
    retry = policy(clock, base_delay=1.0, remaining_seconds=lambda: deadline - clock.now)

    assert retries_until_refused(retry, clock, reserve=2.0) == 3  # 1 + 2 + 4 s; 8 more would end past 10 - 2
    assert clock.now <= deadline - 2.0


def test_max_retries_still_caps_the_count_when_set() -> None:
    clock = Clock()
    assert retries_until_refused(policy(clock, base_delay=0.01, max_retries=3), clock) == 3
    assert retries_until_refused(policy(clock, base_delay=0.01, max_retries=0), clock) == 0


def test_the_settings_give_a_60_second_window_and_no_count_by_default() -> None:
    settings = Settings.from_env(
        {"XNAT_URL": "https://x", "DATA_BUCKET": "b", "XNAT_SERVICE_USER": "u", "XNAT_SERVICE_PASSWORD": "pw"}
    )
    assert (settings.retry_window_seconds, settings.max_retries) == (60.0, None)
    configured = Settings.from_env(
        {
            "XNAT_URL": "https://x",
            "DATA_BUCKET": "b",
            "XNAT_RETRY_WINDOW_SECONDS": "5",
            "XNAT_MAX_RETRIES": "2",
        }
    )
    assert (configured.retry_window_seconds, configured.max_retries) == (5.0, 2)
    retry = open_xnat(settings)._retry
    assert (retry.window_seconds, retry.max_retries) == (60.0, None)


@responses.activate
def test_xnat_answering_503_six_times_in_a_row_is_ridden_out() -> None:
    url = "https://xnat.test/data/projects"
    for _ in range(6):
        responses.get(url, status=503)
    responses.get(url, json={"ResultSet": {"Result": [{"ID": "P", "secondary_ID": "C"}]}})
    xnat = XnatClient("https://xnat.test", "svc", "pw", retry=RetryPolicy(base_delay=0.0))

    assert xnat.find_project_by_secondary_id("C") == "P"
    assert len(responses.calls) == 7
    assert xnat.retries == 6


@responses.activate
def test_an_outage_longer_than_the_window_fails_clearly_with_how_long_it_was_retried() -> None:
    clock = Clock()
    responses.get("https://xnat.test/data/projects", status=503, body="<h3>Service Unavailable</h3>")
    retry = policy(clock, base_delay=1.0, window_seconds=10.0)
    xnat = XnatClient("https://xnat.test", "svc", "pw", retry=retry)

    with pytest.raises(XnatError, match=r"answered 503: Service Unavailable \(after 5 attempts in 10.0 s\)"):
        xnat.find_project_by_secondary_id("C")
