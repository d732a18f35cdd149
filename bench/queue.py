"""The queue flow's benchmark section (GitHub issue 9): `python -m bench.queue` (the second half of
`make bench`). A benchmark, never a test: it measures, prints tables, and exits 1 when a target
is missed or a check fails.

Everything runs on loopback. moto's S3 + SQS server runs in its own process with the bucket, its
notification and the queues of template.yaml (`devserver.stack.LocalStack`); the functions run as
Lambda runs them, one process per container (`bench.fleet`, `bench.container`), polling through
our stand-in for the event source mapping: MaximumConcurrency (4) worker containers on
JobQueue.fifo, and `--intake-containers` (2) on the intake queue (the template does not bound the
intake; Lambda would start 5 pollers, 2 suit a 2-core machine). The XNAT emulator runs in this
process (it is inspected after each run: sessions, conflicts, what reached its disk and its
catalog), fresh for every measurement, with a fixed catalog write latency (`--catalog-latency`,
default 0.03 s) and catalog conflicts on.

Scenarios (sizes are the issue's; `--quick` scales them down):

* **burst**: 200 manifests x 20 files of 64 KiB put at once, 20 of them into the same resource,
  each other one into a resource of its own. All succeed; most XNAT sessions open at once <=
  MaximumConcurrency; 0 catalog conflicts; the time from the first put to the last result.
* **pair**: two 5,000-file jobs (64 KiB files, different paths) into the same resource, put
  together, and the same two put one after the other (the second when the first has its result),
  interleaved per repeat. 0 conflicts, 0 orphans (bytes on XNAT's disk, not in its catalog),
  together <= 1.1 x one after the other.
* **huge**: one manifest of 100,000 files of 16 KiB with the worker's timeout at 60 s: it completes
  by continuing itself (no person acting); every file reaches XNAT exactly once (zip entries and
  PUTs, counted by the emulator); invocations; peak RSS (VmHWM) of the worker containers < 512 MiB.
* **floor**: 200 x 64 KiB: the worker handler on its job message (`bench.child`'s `service`) vs the
  physical floor (`floor`: every object fetched with 32 threads, then one stored zip PUT with
  extract=true, no logic), interleaved (`--floor-repeat`, 9); service / floor <= 1.25 (the median of
  the per-run ratios; the fastest of each is shown too: the machine's noise hits single runs).
  Beside it, the whole service (issue 16, item 5): from the S3 event to the result, the intake and
  then the worker on the message it queued, both handlers in one warm process (`bench.child`'s
  `flow`), against the floor on an emulator whose extraction costs almost nothing (a zip's own bytes
  are not hashed), in the same rounds: <= 1.25 x the floor on 200 x 64 KiB, <= 1.1 x on
  `--flow-large-files` (2,000) x 64 KiB, >= 8 x the seed-like sequential path (GET then PUT per file)
  on 200 x 64 KiB.

Example::

    python -m bench.queue                       # the issue's sizes, 3 repeats (~30 min on 2 cores)
    python -m bench.queue --quick               # 40 manifests, 2 x 500 files, 10,000 files
    python -m bench.queue --only floor --profile /tmp/prof   # also: one .prof per container and run
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import objects
from bench.fleet import Fleet
from bench.run import (
    ACCESSION,
    CHP,
    LAYER,
    NET,
    PASSWORD,
    PREFIX,
    PROJECT,
    RESOURCE,
    ROOT,
    USER,
    Run,
    fresh_xnat,
    new_bench,
    seed_objects,
    show_profile,
    warm_up,
)
from bench.servers import ExternalAws, client, moto_server
from bench.tables import Figure, print_figures
from devserver.stack import LocalStack
from devserver.xnat_emulator import XnatEmulator

KIB = 1024
MIB = 1024 * KIB
SHARED_SCAN = "1"
MAX_CONCURRENCY = 4  # the worker's ScalingConfig.MaximumConcurrency (template default)
# What a deployment that accepts 100,000-path manifests sets (issue 9: "raise the limits").
LIMITS = {"MAX_MANIFEST_FILES": "100000", "MAX_MANIFEST_BYTES": str(16 * MIB)}


# -- one run of the queue flow ----------------------------------------------------------------------


@dataclass
class Job:
    paths: list[str]
    scan: str = SHARED_SCAN


@dataclass
class FlowRun:
    """What one run of the queue flow did, as seen from the results, the emulator and the containers."""

    label: str
    seconds: float
    intake_seconds: float  # first put -> the intake's last invocation ended (every manifest queued)
    jobs: int
    files: int
    statuses: Counter[str]
    succeeded: int  # jobs `succeeded` with every file `uploaded`
    wrong_bytes: int  # files the result calls uploaded whose catalogued MD5 is not the seeded one
    sessions: int  # most XNAT sessions open at once
    conflicts: int
    max_puts: int  # most file PUTs in flight at once
    orphans: int  # paths on XNAT's disk that are not in its catalog
    sent_once: int  # requested files whose bytes reached XNAT exactly once
    sent_twice: int  # ... more than once
    file_puts: int
    invocations: list[int]  # per job, from its result
    worker_peak_rss: int
    intake_peak_rss: int
    worker_growth: int  # worker containers: peak RSS minus RSS when they started polling
    overruns: int
    errors: int
    left_in_queues: dict[str, int]  # queue -> messages still there after the run (visible or not)
    worker_invocations: int

    @property
    def all_succeeded(self) -> bool:
        return self.succeeded == self.jobs


@dataclass
class Context:
    url: str
    stack: LocalStack
    s3: Any
    latency: float
    intakes: int  # intake containers: Lambda scales the intake (no MaximumConcurrency), here a fixed few
    profile: Path | None = None  # each run's containers cProfile their invocations into a folder here
    md5: dict[str, str] = field(default_factory=dict)  # S3 key -> MD5 of what was seeded

    def manifest(self, job: Job) -> bytes:
        return json.dumps(
            {
                "central_hub_project_id": CHP,
                "accession_id": ACCESSION,
                "net_id": NET,
                "scan_id": job.scan,
                "resource_id": RESOURCE,
                "files_relative_paths_to_upload": job.paths,
                "exist_ok": False,
            }
        ).encode()

    def put_manifest(self, job_id: str, job: Job) -> None:
        self.s3.put_object(
            Bucket=self.stack.bucket,
            Key=f"manifests/{job_id}.json",
            Body=self.manifest(job),
            ContentType="application/json",
        )

    def read_result(self, job_id: str) -> dict[str, Any]:
        body = self.s3.get_object(Bucket=self.stack.bucket, Key=f"results/{job_id}.json")["Body"].read()
        return json.loads(body)

    def results_present(self, job_ids: set[str]) -> set[str]:
        """Which of these jobs have a result (one listing of their common prefix)."""
        if not job_ids:
            return set()
        keys = {f"results/{j}.json": j for j in job_ids}
        prefix = os.path.commonprefix(list(keys))  # noqa: RUF071 - cut back to a "/" next
        prefix = prefix[: prefix.rfind("/") + 1]
        found: set[str] = set()
        for page in self.s3.get_paginator("list_objects_v2").paginate(Bucket=self.stack.bucket, Prefix=prefix):
            found |= {keys[item["Key"]] for item in page.get("Contents", []) if item["Key"] in keys}
        return found

    def env(self, xnat: XnatEmulator, **extra: str) -> dict[str, str]:
        return {
            **os.environ,
            **self.stack.environment(
                XNAT_URL=xnat.url,
                XNAT_SERVICE_USER=USER,
                XNAT_SERVICE_PASSWORD=PASSWORD,
                POWERTOOLS_LOG_LEVEL="WARNING",
                PYTHONPATH=os.pathsep.join([str(ROOT), str(LAYER)]),
                **LIMITS,
                **extra,
            ),
        }


def resource_state(xnat: XnatEmulator, scan: str) -> tuple[set[str], dict[str, str]]:
    """(paths on the resource's disk, catalogued path -> MD5), without copying any bytes."""
    with xnat._lock:
        resource = xnat._find_resource(PROJECT, ACCESSION, scan, RESOURCE)
        if resource is None:
            return set(), {}
        return set(resource.disk), {path: blob.md5 for path, blob in resource.catalog.items()}


def run_flow(
    ctx: Context,
    label: str,
    jobs: dict[str, Job],
    *,
    worker_timeout: float,
    sequential: bool = False,
    timeout: float = 3600,
) -> FlowRun:
    """Put the jobs' manifests (all at once, or each when the one before has its result) into a
    running fleet with a fresh XNAT, wait for every result, and gather what happened."""
    # The job queue's visibility timeout as template.yaml sets it for this function timeout (six
    # times): an invocation that outlives its timeout holds its group that long.
    ctx.stack.sqs().set_queue_attributes(
        QueueUrl=ctx.stack.queue_urls["jobs"], Attributes={"VisibilityTimeout": str(int(6 * worker_timeout))}
    )
    profile = ctx.profile / label.replace(" ", "-") if ctx.profile else None
    if profile is not None:
        profile.mkdir(parents=True, exist_ok=True)
    with fresh_xnat(ctx.latency) as xnat:
        fleet = Fleet(
            ctx.env(xnat),
            ctx.stack.queue_urls,
            worker_timeout=worker_timeout,
            workers=MAX_CONCURRENCY,
            intakes=ctx.intakes,
            probe=ctx.results_present,
            profile_dir=profile,
        )
        with fleet:
            started = time.time()
            if sequential:
                for job_id, job in jobs.items():
                    ctx.put_manifest(job_id, job)
                    fleet.wait({job_id}, timeout)
            else:
                with ThreadPoolExecutor(max_workers=16) as pool:
                    list(pool.map(lambda item: ctx.put_manifest(*item), jobs.items()))
                fleet.wait(jobs, timeout)
            seconds = max(fleet.finished[j] for j in jobs) - started
        return _gather(ctx, label, xnat, fleet, jobs, seconds, fleet.intake_done_at - started)


def _gather(
    ctx: Context,
    label: str,
    xnat: XnatEmulator,
    fleet: Fleet,
    jobs: dict[str, Job],
    seconds: float,
    intake_seconds: float,
) -> FlowRun:
    results = {job_id: ctx.read_result(job_id) for job_id in jobs}
    scans = {job.scan for job in jobs.values()}
    states = {scan: resource_state(xnat, scan) for scan in scans}
    received = xnat.times_received()
    statuses: Counter[str] = Counter(r.get("status", "?") for r in results.values())
    succeeded = wrong = 0
    for job_id, job in jobs.items():
        result = results[job_id]
        counts = result.get("counts", {})
        succeeded += result.get("status") == "succeeded" and counts.get("uploaded") == len(job.paths)
        catalog = states[job.scan][1]
        for entry in result.get("files", []):
            if entry.get("status") == "uploaded" and catalog.get(entry["path"]) != ctx.md5[PREFIX + entry["path"]]:
                wrong += 1
    requested = [p for job in jobs.values() for p in job.paths]
    workers, intake = fleet.workers(), fleet.intake()
    if len(workers) != MAX_CONCURRENCY or len(intake) != ctx.intakes:
        raise RuntimeError(f"not every container reported: {len(workers)} workers, {len(intake)} intake")
    return FlowRun(
        label=label,
        seconds=seconds,
        intake_seconds=intake_seconds,
        jobs=len(jobs),
        files=len(requested),
        statuses=statuses,
        succeeded=succeeded,
        wrong_bytes=wrong,
        sessions=xnat.max_active_sessions,
        conflicts=xnat.catalog_conflicts_count,
        max_puts=xnat.max_concurrent_file_puts,
        orphans=sum(len(disk - catalog.keys()) for disk, catalog in states.values()),
        sent_once=sum(received.get(p, 0) == 1 for p in requested),
        sent_twice=sum(received.get(p, 0) > 1 for p in requested),
        file_puts=xnat.count("PUT", "/files/"),
        invocations=[int(r.get("invocations") or 0) for r in results.values()],
        worker_peak_rss=max(c.peak_rss for c in workers),
        intake_peak_rss=max(c.peak_rss for c in intake),
        worker_growth=max(c.peak_rss - c.baseline_rss for c in workers),
        overruns=sum(int(c.stats.get("overruns", 0)) for c in fleet.containers),
        errors=sum(int(c.stats.get("errors", 0)) for c in fleet.containers),
        left_in_queues={
            name: depth
            for name in ("intake", "jobs", "jobs_dlq", "intake_dlq")
            if (depth := ctx.stack.queue_depth(name))
        },
        worker_invocations=sum(int(c.stats.get("invocations", 0)) for c in workers),
    )


# -- the scenarios ----------------------------------------------------------------------------------


def burst_jobs(args: argparse.Namespace, repeat: int) -> dict[str, Job]:
    return {
        f"burst-{repeat}/job-{j:03d}": Job(
            [f"burst/j{j:03d}/f{i:02d}.dcm" for i in range(args.burst_files)],
            SHARED_SCAN if j < args.burst_shared else str(100 + j),
        )
        for j in range(args.burst_jobs)
    }


def pair_jobs(args: argparse.Namespace, label: str) -> dict[str, Job]:
    return {f"{label}/{side}": Job([f"pair/{side}/f{i:05d}.dcm" for i in range(args.pair_files)]) for side in "ab"}


def huge_job(args: argparse.Namespace) -> dict[str, Job]:
    return {"huge/job": Job([f"huge/f{i:06d}.dcm" for i in range(args.huge_files)])}


def seed_all(ctx: Context, args: argparse.Namespace) -> None:
    wanted: dict[str, int] = {}
    if "burst" in args.only:
        wanted |= {PREFIX + p: 64 * KIB for job in burst_jobs(args, 0).values() for p in job.paths}
    if "pair" in args.only:
        wanted |= {PREFIX + p: 64 * KIB for job in pair_jobs(args, "seed").values() for p in job.paths}
    if "huge" in args.only:
        wanted |= {PREFIX + p: 16 * KIB for job in huge_job(args).values() for p in job.paths}
    if wanted:
        started = time.monotonic()
        ctx.md5 |= objects.seed(ctx.s3, ctx.stack.bucket, wanted, label="seeding S3")
        print(f"seeded {len(wanted)} objects in {time.monotonic() - started:.0f} s", flush=True)


@dataclass
class FloorRuns:
    """The floor comparisons, each list one run per repeat, interleaved."""

    service: list[Run]  # the worker handler alone on its job message
    floor: list[Run]  # 32-thread fetch + one stored zip PUT
    flow: list[Run]  # intake + worker, from the S3 event to the result (extraction almost free)
    flow_split: list[tuple[float, float]]  # (intake, worker) seconds of each flow run
    flow_floor: list[Run]  # the floor against that same almost-free extraction
    seed: list[Run]  # the seed-like sequential path (GET then PUT per file)
    large_flow: list[Run]  # the whole flow on the large job
    large_floor: list[Run]


def floor_runs(url: str, args: argparse.Namespace, stack: LocalStack) -> FloorRuns:
    """The worker handler vs the physical floor, and the whole flow (intake + worker) vs the floor
    and the seed-like path, on the same objects, each repeat's parties in alternating order."""
    bench = new_bench(url, args.catalog_latency, args.profile)
    bench.stack_env = stack.environment()
    paths = [f"floor/img-{i:03d}.dcm" for i in range(args.floor_files)]
    seed_objects(bench, dict.fromkeys(paths, 64 * KIB))
    warm_up(bench, paths[0])
    # The large job's objects in a bucket of their own: moto lists by walking the whole bucket after
    # each write (bench.motoserver), where S3's listing does not grow with what else the bucket holds.
    roomy = new_bench(url, args.catalog_latency, args.profile, bucket="xnat-upload-bench-large")
    roomy.stack_env = bench.stack_env
    large = [f"floor/large-{i:05d}.dcm" for i in range(args.flow_large_files)]
    if large:
        seed_objects(roomy, dict.fromkeys(large, 64 * KIB))
        warm_up(roomy, large[0])
    out = FloorRuns([], [], [], [], [], [], [], [])

    def flow(target: list[Run], files: list[str], profile: str | None) -> None:
        run, intake, worker = (roomy if target is out.large_flow else bench).flow(files, profile)
        target.append(run)
        if target is out.flow:
            out.flow_split.append((intake, worker))

    for r in range(args.floor_repeat):
        first = r == 0
        pair = [lambda p=first: out.service.append(bench.service(paths, "auto", "floor_service" if p else None))]
        pair.append(lambda: out.floor.append(bench.floor(paths)))
        pair.append(lambda p=first: flow(out.flow, paths, "flow_service" if p else None))
        pair.append(lambda: out.flow_floor.append(bench.floor(paths, cheap_extraction=True)))
        if args.flow_seed:
            pair.append(lambda: out.seed.append(bench.seed(paths)))
        if large:
            pair.append(lambda p=first: flow(out.large_flow, large, "flow_large" if p else None))
            pair.append(lambda: out.large_floor.append(roomy.floor(large, cheap_extraction=True)))
        for measure in pair if r % 2 == 0 else reversed(pair):
            measure()
    return out


# -- figures ----------------------------------------------------------------------------------------


def figures(
    args: argparse.Namespace,
    bursts: list[FlowRun],
    together: list[FlowRun],
    apart: list[FlowRun],
    huge: FlowRun | None,
    floor: FloorRuns | None,
) -> list[Figure]:
    out: list[Figure] = []
    if bursts:
        n, size = args.burst_jobs, f"{args.burst_files} x 64 KiB"
        out += [
            Figure(f"burst: {n} manifests x {size}, first put -> last result", "s", [b.seconds for b in bursts]),
            Figure("burst: first put -> every manifest queued (intake)", "s", [b.intake_seconds for b in bursts]),
            Figure("burst: files per second", "files/s", [b.files / b.seconds for b in bursts]),
            _exactly("burst: jobs succeeded (every file uploaded)", "jobs", [b.succeeded for b in bursts], n),
            _at_most("burst: most XNAT sessions at once", "sessions", [b.sessions for b in bursts], MAX_CONCURRENCY),
            _at_most("burst: catalog conflicts", "", [b.conflicts for b in bursts], 0),
            _at_most("burst: files uploaded with other bytes", "", [b.wrong_bytes for b in bursts], 0),
            Figure("burst: peak RSS, worker container", "MiB", [b.worker_peak_rss / MIB for b in bursts]),
        ]
    if together:
        ratio = [t.seconds / a.seconds for t, a in zip(together, apart, strict=True)]
        label = f"2 x {args.pair_files} files"
        out += [
            Figure(f"pair: {label} into 1 resource, put together", "s", [t.seconds for t in together]),
            Figure("pair: the same, one after the other", "s", [a.seconds for a in apart]),
            Figure("pair: together / one after the other", "x", ratio, "<= 1.1", statistics.median(ratio) <= 1.1),
            _exactly("pair: jobs succeeded (together)", "jobs", [t.succeeded for t in together], 2),
            _at_most("pair: catalog conflicts (together)", "", [t.conflicts for t in together], 0),
            _at_most("pair: orphans on XNAT's disk (together)", "files", [t.orphans for t in together], 0),
            _at_most("pair: file PUTs in flight at once (together)", "", [t.max_puts for t in together], 1),
            _at_most("pair: files uploaded with other bytes", "", [t.wrong_bytes for t in together + apart], 0),
        ]
    if huge is not None:
        n = args.huge_files
        out += [
            Figure(f"huge: {n} x 16 KiB, timeout {args.huge_timeout:.0f} s, put -> result", "s", [huge.seconds]),
            _exactly("huge: jobs succeeded, no person acting", "jobs", [huge.succeeded], 1),
            _exactly("huge: files whose bytes reached XNAT exactly once", "files", [huge.sent_once], n),
            _at_most("huge: files sent more than once", "files", [huge.sent_twice], 0),
            Figure("huge: zip batch PUTs", "PUTs", [huge.file_puts]),
            Figure("huge: invocations (continuations + 1)", "", [max(huge.invocations)]),
            _at_most("huge: invocations that outlived the timeout", "", [huge.overruns], 0),
            _below("huge: peak RSS, worker container (VmHWM)", "MiB", [huge.worker_peak_rss / MIB], 512),
            Figure("huge: peak RSS growth while polling, worker", "MiB", [huge.worker_growth / MIB]),
            Figure("huge: peak RSS, intake container (validates it)", "MiB", [huge.intake_peak_rss / MIB]),
        ]
    if floor is not None:
        service, raw = floor.service, floor.floor
        ratio = [s.seconds / f.seconds for s, f in zip(service, raw, strict=True)]
        label = f"{args.floor_files} x 64 KiB"
        out += [
            Figure(f"floor: service (worker handler), {label}", "s", [s.seconds for s in service]),
            Figure("floor: 32-thread fetch + one stored zip PUT", "s", [f.seconds for f in raw]),
            Figure("floor: service / floor", "x", ratio, "<= 1.25", statistics.median(ratio) <= 1.25),
            Figure(
                "floor: fastest service / fastest floor",
                "x",
                [min(s.seconds for s in service) / min(f.seconds for f in raw)],
            ),
            Figure("floor: XNAT requests, service", "", [s.requests for s in service]),
        ]
        out += _flow_figures(floor, label, args.flow_large_files)
    return out


def _flow_figures(floor: FloorRuns, label: str, large_files: int) -> list[Figure]:
    """The whole service, S3 event -> result (intake + worker), against the floor on an emulator whose
    extraction costs almost nothing, and against the seed-like path."""
    flow, raw = floor.flow, floor.flow_floor
    ratio = [s.seconds / f.seconds for s, f in zip(flow, raw, strict=True)]
    out = [
        Figure(f"flow: service, S3 event -> result (intake + worker), {label}", "s", [s.seconds for s in flow]),
        Figure("flow: of which the intake handler", "s", [i for i, _ in floor.flow_split]),
        Figure("flow: of which the worker handler", "s", [w for _, w in floor.flow_split]),
        Figure("flow: floor (extraction almost free)", "s", [f.seconds for f in raw]),
        Figure("flow: service / floor", "x", ratio, "<= 1.25", statistics.median(ratio) <= 1.25),
        Figure("flow: XNAT requests, service", "", [s.requests for s in flow]),
    ]
    if floor.seed:
        speedup = [s.seconds / f.seconds for s, f in zip(floor.seed, flow, strict=True)]
        out += [
            Figure(
                f"flow: seed-like sequential path (GET then PUT per file), {label}",
                "s",
                [s.seconds for s in floor.seed],
            ),
            Figure("flow: speed-up service / seed-like", "x", speedup, ">= 8", statistics.median(speedup) >= 8),
        ]
    if floor.large_flow:
        large = [s.seconds / f.seconds for s, f in zip(floor.large_flow, floor.large_floor, strict=True)]
        big = f"{large_files} x 64 KiB"
        out += [
            Figure(f"flow: service, S3 event -> result, {big}", "s", [s.seconds for s in floor.large_flow]),
            Figure(f"flow: floor, {big}", "s", [f.seconds for f in floor.large_floor]),
            Figure(f"flow: service / floor, {big}", "x", large, "<= 1.1", statistics.median(large) <= 1.1),
        ]
    return out


def _exactly(label: str, unit: str, values: Sequence[float], expected: float) -> Figure:
    return Figure(label, unit, list(values), f"= {expected}", all(v == expected for v in values))


def _at_most(label: str, unit: str, values: Sequence[float], limit: float) -> Figure:
    return Figure(label, unit, list(values), f"<= {limit}" if limit else "= 0", max(values) <= limit)


def _below(label: str, unit: str, values: Sequence[float], limit: float) -> Figure:
    return Figure(label, unit, list(values), f"< {limit}", max(values) < limit)


def health(runs: Sequence[FlowRun]) -> list[str]:
    """What must never happen in any run, whatever its figures: said plainly."""
    problems = []
    for run in runs:
        if run.errors:
            problems.append(f"{run.label}: {run.errors} invocations raised (their messages came back)")
        if run.left_in_queues:
            problems.append(f"{run.label}: messages left after the run: {run.left_in_queues}")
        if run.wrong_bytes:
            problems.append(f"{run.label}: {run.wrong_bytes} files reported uploaded with other bytes than seeded")
    return problems


# -- main -------------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="40 manifests, 2 x 500 files, 10,000 files, 1 repeat")
    parser.add_argument("--repeat", type=int, help="runs of burst and pair (median, min, max); default 3")
    parser.add_argument("--floor-repeat", type=int, help="runs of the floor comparison; default 9 (--quick 3)")
    parser.add_argument("--only", default="floor,burst,pair,huge", help="scenarios to run (default all)")
    parser.add_argument("--catalog-latency", type=float, default=0.03, help="emulator's catalog write latency, s")
    parser.add_argument("--intake-containers", type=int, default=2, help="intake containers (default 2)")
    parser.add_argument("--burst-jobs", type=int, help="manifests in the burst (default 200; --quick 40)")
    parser.add_argument("--burst-shared", type=int, help="of them into one resource (default 20; --quick 4)")
    parser.add_argument("--burst-files", type=int, default=20, help="files per burst manifest (default 20)")
    parser.add_argument("--pair-files", type=int, help="files per job of the pair (default 5000; --quick 500)")
    parser.add_argument("--huge-files", type=int, help="files of the huge manifest (default 100000; --quick 10000)")
    parser.add_argument("--huge-timeout", type=float, default=60.0, help="worker timeout for the huge job, s")
    parser.add_argument("--floor-files", type=int, default=200, help="files of the floor comparison (default 200)")
    parser.add_argument(
        "--flow-large-files", type=int, help="files of the whole flow's large job (default 2000; --quick 0: none)"
    )
    parser.add_argument(
        "--no-flow-seed", dest="flow_seed", action="store_false", help="skip the seed-like path (~10 s a run)"
    )
    parser.add_argument(
        "--profile", type=Path, help="cProfile one service run of the floor, and every container of each run, here"
    )
    parser.add_argument("--json", type=Path, help="also write every raw figure to this file")
    args = parser.parse_args(argv)
    quick = args.quick
    args.repeat = args.repeat or (1 if quick else 3)
    args.floor_repeat = args.floor_repeat or (3 if quick else 9)
    args.burst_jobs = args.burst_jobs or (40 if quick else 200)
    args.burst_shared = args.burst_shared or (4 if quick else 20)
    args.pair_files = args.pair_files or (500 if quick else 5000)
    args.huge_files = args.huge_files or (10_000 if quick else 100_000)
    if args.flow_large_files is None:
        args.flow_large_files = 0 if quick else 2000
    args.only = {name.strip() for name in args.only.split(",") if name.strip()}
    if args.only - {"floor", "burst", "pair", "huge"}:
        parser.error(f"unknown scenarios: {', '.join(sorted(args.only - {'floor', 'burst', 'pair', 'huge'}))}")
    if min(args.repeat, args.floor_repeat, args.burst_jobs, args.pair_files, args.huge_files, args.floor_files) < 1:
        parser.error("sizes and --repeat must be positive")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.monotonic()
    print(
        f"bench.queue: {platform.python_implementation()} {platform.python_version()}, {os.cpu_count()} CPUs, "
        f"{platform.machine()}; catalog write latency {args.catalog_latency} s, conflicts on; "
        f"{MAX_CONCURRENCY} worker and {args.intake_containers} intake containers; repeat {args.repeat}; "
        f"scenarios: {', '.join(sorted(args.only))}",
        flush=True,
    )
    bursts: list[FlowRun] = []
    together: list[FlowRun] = []
    apart: list[FlowRun] = []
    huge: FlowRun | None = None
    floor: FloorRuns | None = None
    with moto_server() as url, LocalStack(aws=ExternalAws(url), xnat=XnatEmulator()) as stack:
        from botocore.config import Config

        s3 = client(url, "s3", config=Config(max_pool_connections=32))
        ctx = Context(url, stack, s3, args.catalog_latency, args.intake_containers, args.profile)
        if args.profile:
            args.profile.mkdir(parents=True, exist_ok=True)
        seed_all(ctx, args)

        def progress(what: str) -> None:
            print(f"  {what} ({time.monotonic() - started:.0f} s)", flush=True)

        if "floor" in args.only:
            floor = floor_runs(url, args, stack)
            progress(f"floor: {args.floor_repeat} x (service, floor) done")
        for r in range(args.repeat if "burst" in args.only else 0):
            bursts.append(run_flow(ctx, f"burst {r + 1}", burst_jobs(args, r), worker_timeout=900, timeout=1800))
            progress(f"burst {r + 1}/{args.repeat}: {bursts[-1].seconds:.1f} s")
        for r in range(args.repeat if "pair" in args.only else 0):
            for sequential in (False, True) if r % 2 == 0 else (True, False):
                label = f"pair-{r}-{'apart' if sequential else 'together'}"
                jobs = pair_jobs(args, label)
                run = run_flow(ctx, label, jobs, worker_timeout=900, sequential=sequential, timeout=1800)
                (apart if sequential else together).append(run)
                progress(
                    f"pair {r + 1}/{args.repeat} {'one after the other' if sequential else 'together'}: {run.seconds:.1f} s"
                )
        if "huge" in args.only:
            huge = run_flow(ctx, "huge", huge_job(args), worker_timeout=args.huge_timeout, timeout=3 * 3600)
            progress(f"huge: {huge.seconds:.0f} s, {max(huge.invocations)} invocations")

    table = figures(args, bursts, together, apart, huge, floor)
    print_figures(
        f"Queue flow (median of {args.repeat} runs, floor of {args.floor_repeat}; catalog latency {args.catalog_latency} s; "
        f"MaximumConcurrency {MAX_CONCURRENCY})",
        table,
    )
    problems = health([*bursts, *together, *apart, *([huge] if huge else [])])
    missed = [f.label for f in table if f.met is False]
    for problem in problems:
        print(f"PROBLEM: {problem}")
    if missed:
        print(f"MISSED: {'; '.join(missed)}")
    if args.profile and floor is not None:
        show_profile(args.profile / "floor_service.prof", limit=25)
        show_profile(args.profile / "flow_service.prof", limit=25)
    command = " ".join(sys.argv[1:] if argv is None else argv)
    print(f"\ntotal {time.monotonic() - started:.0f} s; command: python -m bench.queue {command}".rstrip())
    if args.json:
        document = {
            "args": {k: str(v) if isinstance(v, Path | set) else v for k, v in vars(args).items()},
            "burst": [vars(b) for b in bursts],
            "together": [vars(t) for t in together],
            "apart": [vars(a) for a in apart],
            "huge": vars(huge) if huge else None,
            "floor": {
                name: [r if isinstance(r, tuple) else vars(r) for r in runs] for name, runs in vars(floor).items()
            }
            if floor
            else None,
        }
        args.json.write_text(json.dumps(document, indent=2, default=str))
    return 1 if missed or problems else 0


if __name__ == "__main__":
    sys.exit(main())
