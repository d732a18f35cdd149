"""The queue flow's functions as Lambda runs them, for `bench.queue`: one process per container.

`Fleet` starts one intake container and `workers` worker containers (`bench.container`), waits
until each is ready (imports and clients are not part of any figure), hears which jobs finished,
and stops them all, collecting each one's peak RSS and poller statistics.

Example::

    with Fleet(env, stack.queue_urls, worker_timeout=900, workers=4) as fleet:
        stack.put_manifest("burst/job-1", manifest)
        fleet.wait({"burst/job-1"}, timeout=600)
    fleet.containers  # peak RSS and statistics of each container
"""

from __future__ import annotations

import json
import queue
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from devserver.stack import TRIGGER_TIMEOUT

ROOT = Path(__file__).resolve().parent.parent
IDLE_PAUSE = 0.2  # an idle poller's pause: Lambda's long polls cost S3 nothing, moto's short polls do
PROBE_EVERY = 10.0  # seconds between looks for results no worker reported (a manifest the intake refused)


@dataclass
class Container:
    """What a stopped container reported."""

    function: str
    peak_rss: int = 0  # VmHWM, bytes
    baseline_rss: int = 0  # RSS when it started polling
    stats: dict[str, Any] = field(default_factory=dict)


class Fleet:
    def __init__(
        self,
        env: dict[str, str],
        queue_urls: dict[str, str],
        *,
        worker_timeout: float,
        workers: int = 4,
        intakes: int = 1,
        probe: Callable[[set[str]], set[str]] | None = None,
        profile_dir: Path | None = None,
    ) -> None:
        self._env = env
        self._urls = queue_urls
        self._worker_timeout = worker_timeout
        self._workers = workers
        self._intakes = intakes
        self._probe = probe  # unfinished job ids -> those that have a result after all
        self._profile_dir = profile_dir  # each container cProfiles its invocations into a file here
        self._processes: list[subprocess.Popen[str]] = []
        self._stderr: list[IO[str]] = []
        self._lines: queue.Queue[tuple[int, str | None]] = queue.Queue()
        self._results: dict[int, dict[str, Any]] = {}
        self._ended: set[int] = set()  # containers whose stdout reached its end
        self._tmp = tempfile.TemporaryDirectory(prefix="bench-fleet-")
        self.finished: dict[str, float] = {}  # job id -> unix time its result was seen
        self.intake_records = 0  # notifications the intake handled
        self.intake_done_at = 0.0  # unix time its last invocation ended
        self.containers: list[Container] = []

    # -- lifecycle ---------------------------------------------------------------------------------

    def __enter__(self) -> Fleet:
        try:
            for _ in range(self._intakes):
                self._start("manifest_trigger", self._urls["intake"], batch_size=10, timeout=TRIGGER_TIMEOUT)
            lock = str(Path(self._tmp.name) / "job-queue.lock")
            for _ in range(self._workers):
                self._start("upload_worker", self._urls["jobs"], batch_size=1, timeout=self._worker_timeout, lock=lock)
            self._wait_ready(timeout=120)
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _start(
        self, function: str, queue_url: str, *, batch_size: int, timeout: float, lock: str | None = None
    ) -> None:
        spec = {
            "function": function,
            "queue_url": queue_url,
            "batch_size": batch_size,
            "timeout": timeout,
            "lock": lock,
            "idle_pause": IDLE_PAUSE,
            "profile": str(self._profile_dir) if self._profile_dir else None,
        }
        index = len(self._processes)
        stderr = open(Path(self._tmp.name) / f"{index}-{function}.stderr", "w+")  # noqa: SIM115 - closed in stop()
        self._stderr.append(stderr)
        process = subprocess.Popen(
            [sys.executable, "-m", "bench.container", json.dumps(spec)],
            cwd=ROOT,
            env=self._env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
        )
        self._processes.append(process)
        threading.Thread(target=self._read, args=(index, process), daemon=True).start()

    def _read(self, index: int, process: subprocess.Popen[str]) -> None:
        assert process.stdout is not None
        for line in process.stdout:
            self._lines.put((index, line.rstrip("\n")))
        self._lines.put((index, None))

    def _wait_ready(self, timeout: float) -> None:
        ready: set[int] = set()
        deadline = time.monotonic() + timeout
        while len(ready) < len(self._processes):
            index, line = self._next(deadline)
            if line is None:
                raise RuntimeError(f"container {index} ended before it was ready:\n{self._tail(index)}")
            if line == "READY":
                ready.add(index)

    def _next(self, deadline: float) -> tuple[int, str | None]:
        try:
            return self._lines.get(timeout=max(0.01, deadline - time.monotonic()))
        except queue.Empty:
            raise TimeoutError("no word from the containers before the deadline") from None

    def _handle(self, index: int, line: str | None, stopping: bool = False) -> None:
        if line is None:
            self._ended.add(index)
            if not stopping:
                raise RuntimeError(f"container {index} ended while jobs ran:\n{self._tail(index)}")
            return
        if line.startswith("FINISHED "):
            _, job_id, at = line.split(" ")
            self.finished.setdefault(job_id, float(at))
        elif line.startswith("QUEUED "):
            _, records, at = line.split(" ")
            self.intake_records += int(records)
            self.intake_done_at = max(self.intake_done_at, float(at))
        elif line.startswith("BENCH-RESULT "):
            self._results[index] = json.loads(line.removeprefix("BENCH-RESULT "))

    def _tail(self, index: int, size: int = 4000) -> str:
        self._stderr[index].flush()
        return Path(self._stderr[index].name).read_text()[-size:]

    # -- waiting ---------------------------------------------------------------------------------

    def wait(self, jobs: Iterable[str], timeout: float) -> dict[str, float]:
        """Block until every job has its result; returns job -> the unix time it was seen."""
        wanted = set(jobs)
        deadline = time.monotonic() + timeout
        next_probe = time.monotonic() + PROBE_EVERY
        while not wanted <= self.finished.keys():
            if time.monotonic() > deadline:
                missing = sorted(wanted - self.finished.keys())
                raise TimeoutError(f"{len(missing)} jobs without a result after {timeout:.0f} s: {missing[:5]}")
            try:
                index, line = self._lines.get(timeout=0.5)
            except queue.Empty:
                pass
            else:
                self._handle(index, line)
            if self._probe is not None and time.monotonic() > next_probe:
                for job_id in self._probe(wanted - self.finished.keys()):
                    self.finished.setdefault(job_id, time.time())
                next_probe = time.monotonic() + PROBE_EVERY
        return {job: self.finished[job] for job in wanted}

    # -- stopping --------------------------------------------------------------------------------

    def stop(self, timeout: float = 120.0) -> list[Container]:
        """Close every container's stdin (each ends its invocation in flight), collect what it reports."""
        for process in self._processes:
            if process.stdin is not None and not process.stdin.closed:
                with suppress(OSError):  # a container that already died
                    process.stdin.close()
        deadline = time.monotonic() + timeout
        try:
            while len(self._ended) < len(self._processes):
                try:
                    index, line = self._next(deadline)
                except TimeoutError:
                    break
                self._handle(index, line, stopping=True)
        finally:
            for process in self._processes:
                try:
                    process.wait(timeout=max(1.0, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
            for stderr in self._stderr:
                stderr.close()
            self._tmp.cleanup()
        self.containers = [
            Container(
                function=r.get("function", "?"),
                peak_rss=r.get("peak_rss", 0),
                baseline_rss=r.get("baseline_rss", 0),
                stats=r.get("stats", {}),
            )
            for _, r in sorted(self._results.items())
        ]
        self._processes = []
        return self.containers

    def workers(self) -> list[Container]:
        return [c for c in self.containers if c.function == "upload_worker"]

    def intake(self) -> list[Container]:
        return [c for c in self.containers if c.function == "manifest_trigger"]
