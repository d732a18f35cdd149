"""Fault table (GitHub issues 4 and 9): `python -m bench.faults`. Nothing may be lost, whatever fails.

Each scenario runs the queue flow end to end on loopback (`devserver.stack.LocalStack`: moto's S3
and SQS, the bucket notification, the intake and the FIFO job queue, the real intake and worker
handlers behind our stand-in for Lambda's event source mapping, the XNAT emulator) with `--files`
objects: it injects one fault, puts the manifest and runs the queues dry. A job that waits for
XNAT (XNAT down: its message is hidden for a growing delay) gets XNAT back (`heal`) and its
retry delay skipped (`SqsEventSource.release_deferred`), so every scenario ends in a result that
nobody re-put a manifest for. Then the scenario puts the same manifest again (a re-run, as a
client would after a partial result) and checks both results against XNAT's catalog and the S3
bytes.

A file is **lost** when the result manifest does not list it, or reports it in XNAT (`uploaded`,
or `already_exists` with `identical`) while XNAT does not hold exactly its bytes, or reports any
other status without saying why. After the re-run, every file must be in XNAT byte for byte.
Exit status 1 when anything is lost or a re-run does not succeed.

Example::

    python -m bench.faults               # every scenario, 20 files each (about a minute)
    python -m bench.faults --files 50 --only dropped
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from contextlib import redirect_stdout
from dataclasses import dataclass, field
from typing import Any

# The table is the output: the handler's JSON logs and EMF lines would bury it (set before its import).
os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "CRITICAL")  # outcomes are judged in the table
os.environ.setdefault("POWERTOOLS_METRICS_DISABLED", "true")

from devserver.event_source import wait_until
from devserver.handlers import load_handler_module
from devserver.local_s3 import LocalAws
from devserver.stack import DEMO_ACCESSION, DEMO_PROJECT, DEMO_SECONDARY_ID, LocalStack

SCAN, RESOURCE = "1", "NIFTI"
BASE_ENV = {"XNAT_RETRY_BASE_DELAY": "0.01", "XNAT_MAX_RETRIES": "3", "UPLOAD_MODE": "per_file"}


def content(path: str, size: int) -> bytes:
    seed = f"<{path}>".encode()
    return (seed * (size // len(seed) + 1))[:size]


@dataclass
class Scenario:
    """One fault: `inject` before the first run; `heal` once the job waits for XNAT (it then
    resumes by itself); `repair` before the re-run."""

    name: str
    inject: Callable[[Run], None] = lambda run: None
    heal: Callable[[Run], None] = lambda run: None
    repair: Callable[[Run], None] = lambda run: None
    env: dict[str, str] = field(default_factory=dict)
    timeout_seconds: float = 900.0  # the worker's function timeout
    jobs: int = 1  # >1: that many jobs put at once into the same resource, the worker pollers running


@dataclass
class Run:
    """The state of one scenario: the stack, what each job asks for, what S3 holds now."""

    stack: LocalStack
    files: dict[str, dict[str, bytes]]  # job -> path -> bytes in S3

    def paths(self) -> list[str]:
        return [p for files in self.files.values() for p in files]

    def nth(self, index: int) -> str:
        return self.paths()[index]


@dataclass
class Row:
    fault: str
    files: int
    uploaded: int = 0
    failed: int = 0
    pending: int = 0
    skipped: int = 0
    lost: int = 0
    invocations: int = 0  # worker invocations of the first run (continuations and XNAT retries + 1)
    conflicts: int = 0  # catalog conflicts XNAT answered during the first run
    longest: float = 0.0  # the first run's longest worker invocation, seconds
    timeout: float = 0.0  # the worker's function timeout in that run
    overruns: int = 0  # invocations that outlived it (Lambda would have killed them, result unwritten)
    secrets: int = 0  # secrets found in what the jobs wrote (results, progress): must be 0
    after: str = ""
    lost_after: int = 0
    seconds: float = 0.0


# -- scenarios --------------------------------------------------------------------------------------


def _delete(run: Run, path: str) -> None:
    run.stack.s3().delete_object(Bucket=run.stack.bucket, Key=f"net-1/upload/{path}")


def _overwrite(run: Run, path: str) -> None:
    newer = content(f"newer {path}", 5555)
    run.stack.put_image("net-1", path, newer)
    for files in run.files.values():
        if path in files:
            files[path] = newer


def _restore(run: Run, path: str) -> None:
    for files in run.files.values():
        if path in files:
            run.stack.put_image("net-1", path, files[path])


def _another_writer(run: Run, path_contains: str) -> None:
    """Someone outside the service writes the catalog while the job's PUT is in flight."""
    run.stack.xnat.add_resource(DEMO_PROJECT, DEMO_ACCESSION, SCAN, RESOURCE)
    run.stack.xnat.conflict_next(path_contains=path_contains)


def _make_big(run: Run, path: str, size: int) -> None:
    """Give one file `size` bytes: more than loopback's socket buffers hold, so a slow reader slows the sends."""
    data = content(f"big {path}", size)
    run.stack.put_image("net-1", path, data)
    for files in run.files.values():
        if path in files:
            files[path] = data


def _rotate_password(run: Run) -> None:
    """The service account's password changes and open sessions end: every re-login is refused."""
    run.stack.xnat.change_password("rotated-Pa55word")
    run.stack.xnat.expire_sessions()


def _rotation_applied(run: Run) -> None:
    """The operator puts the new password into the secret (here: the environment) before the re-run."""
    os.environ["XNAT_SERVICE_PASSWORD"] = "rotated-Pa55word"


def _wait_for_puts(run: Run, count: int, timeout: float = 15.0) -> None:
    """Requests the client gave up on (timeouts) still run on the server: let them finish."""
    deadline = time.monotonic() + timeout
    while run.stack.xnat.count("PUT", "/files/") < count and time.monotonic() < deadline:
        time.sleep(0.02)


SCENARIOS = [
    Scenario("none (baseline)"),
    Scenario(
        "5xx burst on file PUTs (3 x 503)",
        inject=lambda r: r.stack.xnat.fail_next(503, times=3, method="PUT", path_contains="/files/"),
    ),
    Scenario(
        "5xx on one file beyond the retries",
        inject=lambda r: r.stack.xnat.fail_next(500, times=4, method="PUT", path_contains=r.nth(5)),
    ),
    Scenario(
        "429 throttling (2 x)",
        inject=lambda r: r.stack.xnat.fail_next(429, times=2, method="PUT", path_contains="/files/"),
    ),
    Scenario(
        "403 on one file (not retried)",
        inject=lambda r: r.stack.xnat.fail_next(403, times=1, method="PUT", path_contains=r.nth(3)),
    ),
    Scenario(
        "connection dropped mid-body (3 x)",
        inject=lambda r: r.stack.xnat.drop_connection_next(times=3, after_bytes=1024),
    ),
    Scenario(
        "connection dropped mid zip batch (zip mode)",
        inject=lambda r: r.stack.xnat.drop_connection_next(times=1, path_contains=".zip", after_bytes=4096),
        env={"UPLOAD_MODE": "zip", "ZIP_BATCH_MAX_FILES": "8"},
    ),
    Scenario(
        "slow answers past the read timeout (2 x)",
        inject=lambda r: r.stack.xnat.delay_next(1.0, times=2, method="PUT", path_contains="/files/"),
        repair=lambda r: _wait_for_puts(r, r.stack.xnat.count("PUT", "/files/")),
        env={"XNAT_READ_TIMEOUT": "0.3"},
    ),
    Scenario(
        "one file always slower than the read timeout",
        inject=lambda r: r.stack.xnat.set_delay(0.8, method="PUT", path_contains=r.nth(7)),
        repair=lambda r: (
            r.stack.xnat.set_delay(0, method="PUT", path_contains=r.nth(7)),
            _wait_for_puts(r, len(r.paths()) - 1 + 4),
        ),
        env={"XNAT_READ_TIMEOUT": "0.3"},
    ),
    Scenario(
        "session expired after 5 file PUTs",
        inject=lambda r: r.stack.xnat.expire_sessions_after(5, method="PUT", path_contains="/files/"),
    ),
    Scenario(
        "401 on one file after the re-login",
        inject=lambda r: r.stack.xnat.fail_next(401, times=2, method="PUT", path_contains=r.nth(4)),
    ),
    Scenario(
        "XNAT down at login (job waits, XNAT back)",
        inject=lambda r: r.stack.xnat.set_down(True),
        heal=lambda r: r.stack.xnat.set_down(False),
    ),
    Scenario(
        "XNAT down after 10 file PUTs (job waits, XNAT back)",
        inject=lambda r: r.stack.xnat.on_request(
            lambda: r.stack.xnat.set_down(True), "PUT", "/files/", times=1, skip=10
        ),
        heal=lambda r: r.stack.xnat.set_down(False),
    ),
    Scenario(
        "XNAT down for every delivery (dead-letter queue)",
        inject=lambda r: r.stack.xnat.set_down(True),
        repair=lambda r: r.stack.xnat.set_down(False),
        env={"XNAT_UNAVAILABLE_RETRY_SECONDS": "0"},  # every redelivery at once, up to the redrive limit
    ),
    Scenario(
        "S3 object deleted after validation",
        inject=lambda r: r.stack.xnat.on_request(lambda: _delete(r, r.nth(6)), "GET", "/files"),
        repair=lambda r: _restore(r, r.nth(6)),
    ),
    Scenario(
        "S3 object overwritten after validation",
        inject=lambda r: r.stack.xnat.on_request(lambda: _overwrite(r, r.nth(6)), "GET", "/files"),
    ),
    Scenario(
        "catalog conflict with another writer (1 x)",
        inject=lambda r: _another_writer(r, r.nth(4)),
    ),
    Scenario(
        "catalog conflict with another writer on a zip batch (zip mode)",
        inject=lambda r: _another_writer(r, ".zip"),
        env={"UPLOAD_MODE": "zip", "ZIP_BATCH_MAX_FILES": "8"},
    ),
    Scenario(
        "2 jobs put at once into 1 resource (zip mode)",
        inject=lambda r: r.stack.xnat.set_catalog_write_latency(0.05),
        repair=lambda r: r.stack.xnat.set_catalog_write_latency(0),
        env={"UPLOAD_MODE": "zip", "ZIP_BATCH_MAX_FILES": "4"},
        jobs=2,
    ),
    Scenario(
        "Lambda timeout: 5 s, margin 3 s, 0.3 s per PUT",
        inject=lambda r: r.stack.xnat.set_delay(0.3, method="PUT", path_contains="/files/"),
        repair=lambda r: r.stack.xnat.set_delay(0, method="PUT", path_contains="/files/"),
        env={"TIME_BUDGET_MARGIN_SECONDS": "3"},
        timeout_seconds=5,
    ),
    Scenario(
        "503 six times in a row (XNAT restarting behind a proxy)",
        inject=lambda r: r.stack.xnat.fail_next(503, times=6, method="PUT", path_contains="/files/"),
        env={"XNAT_MAX_RETRIES": ""},  # the default: retried for XNAT_RETRY_WINDOW_SECONDS, not counted
    ),
    Scenario(
        "poison file in a zip batch (XNAT refuses it, every time)",
        inject=lambda r: r.stack.xnat.refuse_file(r.nth(11), message="cannot read this file"),
        repair=lambda r: r.stack.xnat.clear_faults(),
        env={"UPLOAD_MODE": "zip"},
    ),
    Scenario(
        "listing trickled at 5 bytes/s (timeout 6 s)",
        inject=lambda r: r.stack.xnat.trickle_response_next(5, method="GET", path_contains="/files"),
        env={"TIME_BUDGET_MARGIN_SECONDS": "3", "XNAT_READ_TIMEOUT": "120"},
        timeout_seconds=6,
    ),
    Scenario(
        "6 MiB PUT read by XNAT at 512 KiB/s (timeout 6 s)",
        inject=lambda r: (
            _make_big(r, r.nth(0), 6 * 1024 * 1024),
            r.stack.xnat.read_body_slowly_next(512 * 1024, method="PUT", path_contains=r.nth(0)),
        ),
        env={"TIME_BUDGET_MARGIN_SECONDS": "3", "XNAT_READ_TIMEOUT": "120"},
        timeout_seconds=6,
    ),
    Scenario(
        "error pages echo the request (Authorization, cookies)",
        inject=lambda r: (
            r.stack.xnat.echo_requests_in_errors(),
            r.stack.xnat.fail_next(500, times=10, method="PUT", path_contains=r.nth(2), body="Internal error"),
            r.stack.xnat.fail_next(403, times=1, method="PUT", path_contains=r.nth(5), body="CSRF check failed"),
        ),
        repair=lambda r: r.stack.xnat.clear_faults(),
    ),
    Scenario(
        "password rotated after 3 file PUTs",
        inject=lambda r: r.stack.xnat.on_request(lambda: _rotate_password(r), "PUT", "/files/", skip=3),
        repair=_rotation_applied,
    ),
]


# -- running and judging ----------------------------------------------------------------------------


def manifest(paths: list[str]) -> dict[str, Any]:
    return {
        "central_hub_project_id": DEMO_SECONDARY_ID,
        "accession_id": DEMO_ACCESSION,
        "net_id": "net-1",
        "scan_id": SCAN,
        "resource_id": RESOURCE,
        "files_relative_paths_to_upload": paths,
        "exist_ok": False,
    }


def put_all(run: Run, scenario: Scenario, row: Row | None = None) -> dict[str, dict[str, Any]]:
    """Put every job's manifest and run the queues until each job has its result.

    One job: the queues are drained one invocation at a time. Several: they are put together and
    the pollers run them at the worker's MaximumConcurrency, as Lambda would. A job that waits for
    XNAT gets it back (`heal`) and its retry delay skipped, and is run on to its result."""
    stack = run.stack
    assert stack.worker is not None
    stack.worker.function_timeout = scenario.timeout_seconds
    for job, files in run.files.items():
        stack.put_manifest(job, manifest(list(files)))
    if len(run.files) > 1:
        stack.start_pollers()
        try:
            wait_until(lambda: all(stack.read_result(job) for job in run.files), timeout=120)
        finally:
            stack.stop_pollers()
    stack.drain()
    if any(stack.read_result(job) is None for job in run.files):  # waiting for XNAT
        scenario.heal(run)
        stack.worker.release_deferred()
        stack.drain()
    results = {job: stack.read_result(job) or {} for job in run.files}
    if row is not None:
        row.invocations = max((r.get("invocations") or 0 for r in results.values()), default=0)
        row.conflicts = stack.xnat.catalog_conflicts_count
        row.longest = stack.worker.stats.longest_seconds
        row.timeout = scenario.timeout_seconds
        row.overruns = stack.worker.stats.overruns
    return results


def in_place(entry: dict[str, Any]) -> bool:
    return entry.get("status") == "uploaded" or (entry.get("status") == "already_exists" and entry.get("identical"))


def judge(run: Run, results: dict[str, dict[str, Any]], row: Row) -> None:
    """Count statuses and lost files (see the module docstring)."""
    for job, files in run.files.items():
        entries = {e.get("path"): e for e in results[job].get("files", [])}
        for path, data in files.items():
            entry = entries.get(path)
            if entry is None:
                row.lost += 1
                continue
            stored = run.stack.xnat.get_file(DEMO_PROJECT, DEMO_ACCESSION, SCAN, RESOURCE, path)
            status = entry.get("status")
            if in_place(entry):
                row.uploaded += 1
                row.lost += stored != data
            elif status in ("failed", "pending", "skipped", "already_exists"):
                row.failed += status in ("failed", "already_exists")
                row.pending += status == "pending"
                row.skipped += status == "skipped"
                row.lost += not entry.get("error")
            else:
                row.lost += 1


def secrets_in_writes(run: Run) -> int:
    """How many secrets appear in what the jobs wrote for readers: results and ledger items."""
    stack = run.stack
    rotated = os.environ.get("XNAT_SERVICE_PASSWORD", stack.xnat_password)
    secrets = [*stack.secrets().values(), rotated, "Basic ", "JSESSIONID="]
    found = 0
    for job in run.files:
        texts = [json.dumps(stack.read_job(job))]
        try:
            texts.append(stack.s3().get_object(Bucket=stack.bucket, Key=f"results/{job}.json")["Body"].read().decode())
        except stack.s3().exceptions.NoSuchKey:
            pass
        found += sum(secret in text for text in texts for secret in secrets)
    return found


def run_scenario(aws: LocalAws, scenario: Scenario, count: int) -> Row:
    from xnat_upload.aws import s3_client, sqs_client

    aws.reset()
    with LocalStack(aws=aws) as stack:
        os.environ.update(stack.environment(**{**BASE_ENV, **scenario.env}))
        for name in [name for name, value in scenario.env.items() if not value]:
            os.environ.pop(name)  # "" stands for: unset, the service's default
        s3_client.cache_clear()
        sqs_client.cache_clear()
        per_job = count // scenario.jobs
        run = Run(stack, {})
        for j in range(scenario.jobs):
            job = f"job-{j}"
            files = {f"j{j}/file-{i:03d}.nii": content(f"{job}/{i}", 3000 + 211 * i) for i in range(per_job)}
            for path, data in files.items():
                stack.put_image("net-1", path, data)
            run.files[job] = files
        row = Row(scenario.name, len(run.paths()))
        started = time.monotonic()
        scenario.inject(run)
        judge(run, put_all(run, scenario, row), row)
        row.secrets = secrets_in_writes(run)
        scenario.repair(run)
        rerun = Row(scenario.name, row.files)
        results = {}
        calm = Scenario("re-run")  # the client's calm second try, one job at a time, no fault left
        for job in run.files:
            results[job] = put_all(Run(stack, {job: run.files[job]}), calm)[job]
        judge(run, results, rerun)
        missing = sum(
            stack.xnat.get_file(DEMO_PROJECT, DEMO_ACCESSION, SCAN, RESOURCE, p) != d
            for files in run.files.values()
            for p, d in files.items()
        )
        statuses = {r.get("status") for r in results.values()}
        row.lost_after = rerun.lost + missing
        row.secrets += secrets_in_writes(run)
        row.after = f"{'/'.join(sorted(s or '?' for s in statuses))}, {row.files - missing}/{row.files} in XNAT"
        row.seconds = time.monotonic() - started
        for name in (*BASE_ENV, *scenario.env, "XNAT_SERVICE_PASSWORD"):
            os.environ.pop(name, None)
        return row


def table(rows: list[Row]) -> str:
    header = (
        "| fault | files | uploaded | failed | pending | skipped | lost | invocations | conflicts "
        "| longest invocation / timeout | secrets | after re-run | lost after |"
    )
    lines = [header, "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: |"]
    for r in rows:
        deadline = f"{r.longest:.1f} / {r.timeout:g} s" + (f" ({r.overruns} OVERRAN)" if r.overruns else "")
        lines.append(
            f"| {r.fault} | {r.files} | {r.uploaded} | {r.failed} | {r.pending} | {r.skipped} | {r.lost} "
            f"| {r.invocations} | {r.conflicts} | {deadline} | {r.secrets} | {r.after} | {r.lost_after} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=20, help="objects per scenario (default 20)")
    parser.add_argument("--only", default="", help="run the scenarios whose name contains this text")
    args = parser.parse_args(argv)
    load_handler_module("upload_worker")  # puts the layer on sys.path, as Lambda would
    os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "WARNING")
    os.environ.setdefault("POWERTOOLS_METRICS_DISABLED", "true")
    import logging

    from xnat_upload.observability import logger

    logger.setLevel(os.environ["POWERTOOLS_LOG_LEVEL"])
    logging.getLogger("urllib3").setLevel(logging.ERROR)

    rows: list[Row] = []
    # stdout carries the table alone: the handlers' own output (EMF lines) goes to stderr.
    with LocalAws() as aws, redirect_stdout(sys.stderr):
        for scenario in SCENARIOS:
            if args.only.lower() not in scenario.name.lower():
                continue
            row = run_scenario(aws, scenario, args.files)
            rows.append(row)
            print(f"  {row.fault}: {row.seconds:.1f} s", file=sys.stderr, flush=True)
    print(table(rows))
    bad = [
        r
        for r in rows
        if r.lost
        or r.lost_after
        or r.overruns
        or r.secrets
        or "succeeded" not in r.after
        or "/" in r.after.split(",")[0]
    ]
    if bad:
        print(
            f"\nFAILED: files lost, an invocation past its deadline, a secret written or a re-run incomplete in: "
            f"{', '.join(r.fault for r in bad)}",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
