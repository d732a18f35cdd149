"""Benchmark of GitHub issue 5: `python -m bench.run` (the first half of `make bench`; the queue
flow's own section is `bench.queue`). Never a timed test.

Everything runs on loopback: moto's S3 + SQS server in its own process, the XNAT emulator in this
process with a fixed catalog write latency (`--catalog-latency`, default 0.03 s) and catalog
conflicts on, and every measured party in a fresh child interpreter (`bench.child`), so that its
peak RSS (VmHWM) holds only that party. A fresh emulator serves each measurement: request counts
are per job and stored files do not pile up in memory.

Figures (each the median of `--repeat` runs, with min and max; parties interleaved per repeat):

"The service" is the upload worker (`functions/upload_worker/app.py:lambda_handler`) invoked with
the SQS FIFO job event JobQueue.fifo would deliver for a manifest the parent put: the part of the
queue flow that reads S3 and writes XNAT. The intake (validation, queueing) is not in these figures.

1. many small files: the service (UPLOAD_MODE=auto -> zip batches) vs a seed-like
   baseline (sequential; a full GET of each file's XNAT URL as existence check, the S3 object read
   whole, one PUT each); the per-file path (UPLOAD_MODE=per_file) for reference.
2. a few big files: the service vs a raw copy (one streamed S3 GET piped into one XNAT PUT).
3. peak RSS growth of the handler's process while streaming one big object.
4. XNAT requests per job for N files (service zip, service per_file, seed-like baseline).
5. the worker handler's import time in a fresh interpreter.

Example::

    python -m bench.run                 # 500 x 256 KiB, 2 x 512 MiB, 1 GiB, 3 repeats (~5 min on 2 cores)
    python -m bench.run --quick         # 100 files, 2 x 64 MiB, 256 MiB
    python -m bench.run --profile /tmp/prof   # also cProfile one service run of figures 1 and 2
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import pstats
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.servers import client, moto_server
from bench.tables import Figure, print_figures, print_table
from devserver.events import s3_put_event, sqs_event
from devserver.local_s3 import CREDENTIALS, REGION
from devserver.xnat_emulator import XnatEmulator
from xnat_upload.job.queue import JobMessage, message_group_id
from xnat_upload.manifest import JobManifest

ROOT = Path(__file__).resolve().parent.parent
LAYER = ROOT / "layers" / "xnat_upload"
KIB = 1024
MIB = 1024 * KIB
BUCKET = "xnat-upload-bench"
NET = "bench"
PREFIX = f"{NET}/upload/"
USER, PASSWORD = "svc-bench", "bench-only-password"
PROJECT, CHP, SUBJECT, ACCESSION = "PRJ001", "CHP-001", "SUBJ001", "ACC0001"
SCAN, RESOURCE = "1", "NIFTI"
JOB_QUEUE = "xnat-upload-bench-jobs.fifo"
# What the whole flow (`Bench.flow`) takes from the local stack's configuration.
FLOW_SETTINGS = ("JOBS_TABLE", "EVENT_BUS_NAME", "EVENT_SOURCE", "JOB_MAX_RECEIVE_COUNT", "INTAKE_MAX_RECEIVE_COUNT",
                 "JOB_QUEUE_VISIBILITY_SECONDS")  # fmt: skip


# -- servers -------------------------------------------------------------------------------------


@contextmanager
def fresh_xnat(latency: float, cheap_extraction: bool = False) -> Iterator[XnatEmulator]:
    """A new emulator with the demo project and session; catalog conflicts on. `cheap_extraction`:
    a zip's own bytes are not hashed on receipt (the whole-flow figure's stand-in for an XNAT whose
    extraction costs almost nothing)."""
    with XnatEmulator(
        USER, PASSWORD, catalog_write_latency=latency, catalog_conflicts=True, cheap_extraction=cheap_extraction
    ) as xnat:
        xnat.add_project(PROJECT, secondary_id=CHP)
        xnat.add_experiment(PROJECT, SUBJECT, ACCESSION)
        yield xnat


def catalogued(xnat: XnatEmulator) -> dict[str, tuple[int, str]]:
    """path -> (size, MD5) of every catalogued file in the bench resource, without copying bytes."""
    with xnat._lock:
        resource = xnat._find_resource(PROJECT, ACCESSION, SCAN, RESOURCE)
        if resource is None:
            return {}
        return {path: (len(blob.data), blob.md5) for path, blob in resource.catalog.items()}


# -- one measurement ----------------------------------------------------------------------------


@dataclass
class Run:
    seconds: float
    growth: int  # peak RSS (VmHWM) minus RSS after imports, bytes
    requests: int  # XNAT requests seen by the emulator
    conflicts: int
    max_puts_in_flight: int


@dataclass
class Bench:
    s3_url: str
    latency: float
    s3: Any
    job_queue_url: str  # a real FIFO queue: the worker's continuation would go there
    job_queue_arn: str
    jobs: int = 0
    profile_dir: Path | None = None
    expected: dict[str, str] = field(default_factory=dict)  # path -> MD5 of what was seeded
    # The whole flow's configuration (`flow`): the local stack's jobs ledger, event bus and counts.
    stack_env: dict[str, str] = field(default_factory=dict)
    bucket: str = BUCKET

    def env(self, xnat: XnatEmulator, **extra: str) -> dict[str, str]:
        return {
            **os.environ,
            **CREDENTIALS,
            "AWS_ENDPOINT_URL": self.s3_url,
            "AWS_DEFAULT_REGION": REGION,
            "AWS_REGION": REGION,
            "XNAT_URL": xnat.url,
            "XNAT_SERVICE_USER": USER,
            "XNAT_SERVICE_PASSWORD": PASSWORD,
            "DATA_BUCKET": self.bucket,
            "JOB_QUEUE_URL": self.job_queue_url,
            "POWERTOOLS_SERVICE_NAME": "xnat-upload",
            "POWERTOOLS_METRICS_NAMESPACE": "XnatUploadBench",
            "POWERTOOLS_TRACE_DISABLED": "true",
            "POWERTOOLS_LOG_LEVEL": "WARNING",
            "PYTHONPATH": os.pathsep.join([str(ROOT), str(LAYER)]),
            **extra,
        }

    def child(self, spec: dict[str, Any], env: dict[str, str]) -> dict[str, Any]:
        done = subprocess.run(
            [sys.executable, "-m", "bench.child", json.dumps(spec)],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=1800,
        )
        lines = [line for line in done.stdout.splitlines() if line.startswith("BENCH-RESULT ")]
        if done.returncode != 0 or not lines:
            raise RuntimeError(f"{spec['mode']} child failed ({done.returncode}):\n{done.stderr[-4000:]}")
        return json.loads(lines[-1].removeprefix("BENCH-RESULT "))

    def _measured(self, xnat: XnatEmulator, out: dict[str, Any], paths: Sequence[str], stored: Sequence[str]) -> Run:
        have = catalogued(xnat)
        for path, name in zip(paths, stored, strict=True):
            if have.get(name, (0, ""))[1] != self.expected[path]:
                raise RuntimeError(f"{name} is not in XNAT with the seeded content")
        return Run(
            out["seconds"],
            out["peak_rss"] - out["baseline_rss"],
            xnat.count(),
            xnat.catalog_conflicts_count,
            xnat.max_concurrent_file_puts,
        )

    def service(self, paths: Sequence[str], mode: str = "auto", profile: str | None = None) -> Run:
        self.jobs += 1
        job = f"bench-{self.jobs}"
        manifest = self.manifest(paths)
        body = json.dumps(manifest).encode()
        key = f"manifests/{job}.json"
        put = self.s3.put_object(Bucket=self.bucket, Key=key, Body=body, ContentType="application/json")
        event = self.job_event(job, key, put.get("VersionId"), manifest)
        with fresh_xnat(self.latency) as xnat:
            spec: dict[str, Any] = {"mode": "service", "event": event}
            if profile and self.profile_dir is not None:
                spec["profile"] = str(self.profile_dir / f"{profile}.prof")
            out = self.child(spec, self.env(xnat, UPLOAD_MODE=mode))
            result = json.loads(self.s3.get_object(Bucket=self.bucket, Key=f"results/{job}.json")["Body"].read())
            if result["status"] != "succeeded" or result["counts"].get("uploaded") != len(paths):
                raise RuntimeError(f"service job {job} did not succeed: {result.get('counts')} {result.get('error')}")
            return self._measured(xnat, out, paths, paths)

    def flow(self, paths: Sequence[str], profile: str | None = None) -> tuple[Run, float, float]:
        """The whole service from the S3 event to the result (`bench.child`'s `flow`: the intake, then
        the worker on the message it queued), against an emulator whose extraction costs almost
        nothing. Returns the run (its seconds: intake + worker) and the two handlers' seconds."""
        self.jobs += 1
        job = f"flow-{self.bucket}-{self.jobs}"  # one jobs ledger for every bench bucket
        body = json.dumps(self.manifest(paths)).encode()
        key = f"manifests/{job}.json"
        put = self.s3.put_object(Bucket=self.bucket, Key=key, Body=body, ContentType="application/json")
        notification = s3_put_event(self.bucket, key, len(body), put["ETag"], put.get("VersionId"))
        intake_arn = f"arn:aws:sqs:{REGION}:123456789012:xnat-upload-bench-intake"
        event = sqs_event([json.dumps(notification)], intake_arn)
        with fresh_xnat(self.latency, cheap_extraction=True) as xnat:
            spec: dict[str, Any] = {
                "mode": "flow",
                "event": event,
                "job_queue_url": self.job_queue_url,
                "job_queue_arn": self.job_queue_arn,
            }
            if profile and self.profile_dir is not None:
                spec["profile"] = str(self.profile_dir / f"{profile}.prof")
            env = self.env(xnat, **{k: v for k, v in self.stack_env.items() if k in FLOW_SETTINGS})
            out = self.child(spec, env)
            result = json.loads(self.s3.get_object(Bucket=self.bucket, Key=f"results/{job}.json")["Body"].read())
            if result["status"] != "succeeded" or result["counts"].get("uploaded") != len(paths):
                raise RuntimeError(f"flow job {job} did not succeed: {result.get('counts')} {result.get('error')}")
            intake, worker = out["answer"]["intake_seconds"], out["answer"]["worker_seconds"]
            out["seconds"] = intake + worker
            return self._measured(xnat, out, paths, paths), intake, worker

    @staticmethod
    def manifest(paths: Sequence[str]) -> dict[str, Any]:
        return {
            "central_hub_project_id": CHP,
            "accession_id": ACCESSION,
            "net_id": NET,
            "scan_id": SCAN,
            "resource_id": RESOURCE,
            "files_relative_paths_to_upload": list(paths),
            "exist_ok": False,
        }

    def job_event(self, job: str, key: str, version: str | None, manifest: dict[str, Any]) -> dict[str, Any]:
        """The SQS record JobQueue.fifo delivers for this job's first invocation (what the intake sends)."""
        message = JobMessage(job_id=job, manifest_key=key, manifest_version=version, continuation=0)
        group = message_group_id(JobManifest.from_data(manifest))
        return sqs_event([message.to_body()], self.job_queue_arn, group_id=group)

    def seed(self, paths: Sequence[str]) -> Run:
        with fresh_xnat(self.latency) as xnat:
            spec = {
                "mode": "seed",
                "xnat_url": xnat.url,
                "user": USER,
                "password": PASSWORD,
                "chp": CHP,
                "accession": ACCESSION,
                "scan": SCAN,
                "resource": RESOURCE,
                "bucket": self.bucket,
                "prefix": PREFIX,
                "paths": list(paths),
            }
            out = self.child(spec, self.env(xnat))
            return self._measured(xnat, out, paths, [p.rsplit("/", 1)[-1] for p in paths])

    def raw(self, paths: Sequence[str], md5: bool = False) -> Run:
        return self._direct({"mode": "raw", "md5": md5}, paths)

    def floor(self, paths: Sequence[str], threads: int = 32, cheap_extraction: bool = False) -> Run:
        """The physical floor for many small files: fetch all (32 threads), one stored zip PUT."""
        return self._direct({"mode": "floor", "threads": threads}, paths, cheap_extraction)

    def _direct(self, party: dict[str, Any], paths: Sequence[str], cheap_extraction: bool = False) -> Run:
        """A party with no logic (`raw`, `floor`): it writes straight into an existing resource."""
        with fresh_xnat(self.latency, cheap_extraction) as xnat:
            xnat.add_resource(PROJECT, ACCESSION, SCAN, RESOURCE)
            experiment = xnat._experiment(PROJECT, ACCESSION)
            files_url = (
                f"/data/projects/{PROJECT}/subjects/{experiment.subject.id}/experiments/{experiment.id}"
                f"/scans/{SCAN}/resources/{RESOURCE}/files"
            )
            spec = {
                **party,
                "xnat_url": xnat.url,
                "user": USER,
                "password": PASSWORD,
                "bucket": self.bucket,
                "prefix": PREFIX,
                "paths": list(paths),
                "files_url": files_url,
            }
            out = self.child(spec, self.env(xnat))
            return self._measured(xnat, out, paths, paths)

    def import_seconds(self) -> float:
        env = {**os.environ, "POWERTOOLS_TRACE_DISABLED": "true", "PYTHONPATH": f"{ROOT}{os.pathsep}{LAYER}"}
        return float(self.child({"mode": "import"}, env)["seconds"])


# -- seeding S3 ----------------------------------------------------------------------------------


def seed_objects(bench: Bench, objects: dict[str, int], pattern_block: int = MIB) -> None:
    """Put random objects (single PUT: their ETag is their MD5) and remember each MD5."""

    def put(item: tuple[str, int]) -> tuple[str, str]:
        path, size = item
        if size <= pattern_block:
            data = os.urandom(size)
        else:  # a random block repeated: cheap to make, still one object's worth of bytes on the wire
            block = os.urandom(pattern_block)
            data = block * (size // pattern_block) + block[: size % pattern_block]
        etag = bench.s3.put_object(Bucket=bench.bucket, Key=PREFIX + path, Body=data)["ETag"]
        return path, etag.strip('"')

    big = {p: s for p, s in objects.items() if s > 64 * MIB}
    small = {p: s for p, s in objects.items() if p not in big}
    with ThreadPoolExecutor(max_workers=8) as pool:
        bench.expected.update(pool.map(put, small.items()))
    for item in big.items():  # one at a time: each is held in memory while it is sent
        path, md5 = put(item)
        bench.expected[path] = md5


def data_bucket(s3: Any, bucket: str = BUCKET) -> None:
    """The bench's data bucket, versioned as template.yaml's is (the service refuses one that is not)."""
    s3.create_bucket(Bucket=bucket)
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})


def new_bench(url: str, catalog_latency: float, profile_dir: Path | None, bucket: str = BUCKET) -> Bench:
    """A Bench on moto's server at `url`, with template.yaml's versioned data bucket and FIFO job queue."""
    s3 = client(url, "s3")
    data_bucket(s3, bucket)
    queue_url, queue_arn = job_queue(url)
    if profile_dir:
        profile_dir.mkdir(parents=True, exist_ok=True)
    return Bench(url, catalog_latency, s3, queue_url, queue_arn, profile_dir=profile_dir, bucket=bucket)


def job_queue(url: str) -> tuple[str, str]:
    """A FIFO job queue on moto's server, as template.yaml declares JobQueue.fifo: (URL, ARN)."""
    sqs = client(url, "sqs")
    queue_url = sqs.create_queue(QueueName=JOB_QUEUE, Attributes={"FifoQueue": "true", "VisibilityTimeout": "960"})[
        "QueueUrl"
    ]
    arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    return queue_url, arn


def warm_up(bench: Bench, path: str) -> None:
    """First requests to a fresh moto server pay for lazy imports and templates (its 404 page)."""
    for _ in range(3):
        bench.s3.head_object(Bucket=bench.bucket, Key=PREFIX + path)
        bench.s3.get_object(Bucket=bench.bucket, Key=PREFIX + path)["Body"].read()
        with suppress(bench.s3.exceptions.NoSuchKey):
            bench.s3.get_object(Bucket=bench.bucket, Key="results/warm-up.json")


# -- output --------------------------------------------------------------------------------------


def _mib_s(size: int, run: Run) -> float:
    return size / MIB / run.seconds


def show_profile(path: Path, limit: int = 18) -> None:
    if not path.exists():
        return
    print(f"\ncProfile of {path.name} (child process, timed part only), top {limit} by own time:")
    stats = pstats.Stats(str(path))
    stats.sort_stats("tottime").print_stats(limit)


# -- main ----------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="100 small files, 2 x 64 MiB, a 256 MiB stream")
    parser.add_argument("--repeat", type=int, default=3, help="runs per figure (median, min, max); default 3")
    parser.add_argument("--catalog-latency", type=float, default=0.03, help="emulator's catalog write latency, s")
    parser.add_argument("--files", type=int, help="small files in figure 1 (default 500; --quick 100)")
    parser.add_argument("--file-kib", type=int, default=256, help="size of each small file, KiB (default 256)")
    parser.add_argument("--big-files", type=int, default=2, help="big files in figure 2 (default 2)")
    parser.add_argument("--big-mib", type=int, help="size of each big file, MiB (default 512; --quick 64)")
    parser.add_argument("--stream-mib", type=int, help="object streamed in figure 3, MiB (default 1024; --quick 256)")
    parser.add_argument("--counts", help="N values for figure 4 (default 1,10,100,<files>)")
    parser.add_argument("--import-runs", type=int, default=7, help="fresh interpreters for figure 5 (default 7)")
    parser.add_argument("--no-per-file", action="store_true", help="skip the per-file reference run of figure 1")
    parser.add_argument("--profile", type=Path, help="cProfile one service run of figures 1 and 2 into this folder")
    parser.add_argument("--json", type=Path, help="also write every raw figure to this file")
    parser.add_argument("--only", default="1,2,3,4,5", help="figures to measure, e.g. 1,4 (default all)")
    args = parser.parse_args(argv)
    args.files = args.files or (100 if args.quick else 500)
    args.big_mib = args.big_mib or (64 if args.quick else 512)
    args.stream_mib = args.stream_mib or (256 if args.quick else 1024)
    counts = args.counts or f"1,10,100,{args.files}"
    args.counts = sorted({int(n) for n in counts.split(",") if n.strip()})
    args.only = {int(n) for n in args.only.split(",") if n.strip()}
    if args.repeat < 1 or args.files < 1 or min(args.counts) < 1:
        parser.error("--repeat, --files and --counts must be positive")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.monotonic()
    small = [f"small/img-{i:04d}.nii" for i in range(max(args.files, *args.counts))]
    big = [f"big/volume-{i}.nii" for i in range(args.big_files)]
    stream = ["stream/volume.nii"]

    print(
        f"bench: {platform.python_implementation()} {platform.python_version()}, {os.cpu_count()} CPUs, "
        f"{platform.machine()}; catalog write latency {args.catalog_latency} s, catalog conflicts on; "
        f"repeat {args.repeat}"
    )
    print(
        f"figure 1: {args.files} x {args.file_kib} KiB; figure 2: {args.big_files} x {args.big_mib} MiB; "
        f"figure 3: {args.stream_mib} MiB; figure 4: N = {', '.join(map(str, args.counts))}"
    )
    with moto_server() as s3_url:
        bench = new_bench(s3_url, args.catalog_latency, args.profile)
        seeding = time.monotonic()
        seed_objects(bench, {p: args.file_kib * KIB for p in small})
        if 2 in args.only:
            seed_objects(bench, {p: args.big_mib * MIB for p in big})
        if 3 in args.only:
            seed_objects(bench, {stream[0]: args.stream_mib * MIB})
        print(f"seeded S3 in {time.monotonic() - seeding:.1f} s")

        warm_up(bench, small[0])
        runs: dict[str, list[Run]] = {
            k: []
            for k in ("small_service", "small_seed", "small_perfile", "big_service", "big_raw", "big_raw_md5", "stream")
        }
        files = small[: args.files]
        for r in range(args.repeat):
            first = r == 0
            # Each pair runs in alternating order, so neither party always inherits the other's aftermath.
            pairs: list[list[tuple[str, Callable[[], Run]]]] = []
            if 1 in args.only:
                pairs.append(
                    [
                        ("small_service", lambda p=first: bench.service(files, "auto", "small_service" if p else None)),
                        ("small_seed", lambda: bench.seed(files)),
                    ]
                )
                if not args.no_per_file:
                    pairs.append([("small_perfile", lambda: bench.service(files, "per_file"))])
            if 2 in args.only:
                pairs.append(
                    [
                        ("big_service", lambda p=first: bench.service(big, "auto", "big_service" if p else None)),
                        ("big_raw", lambda: bench.raw(big)),
                        ("big_raw_md5", lambda: bench.raw(big, md5=True)),
                    ]
                )
            if 3 in args.only:
                pairs.append([("stream", lambda: bench.service(stream, "auto"))])
            for pair in pairs:
                for name, measure in pair if r % 2 == 0 else reversed(pair):
                    runs[name].append(measure())
            print(f"  repeat {r + 1}/{args.repeat} done ({time.monotonic() - started:.0f} s)", flush=True)

        counts: dict[int, dict[str, Run]] = {}
        for n in args.counts if 4 in args.only else ():
            if n == args.files and runs["small_service"] and runs["small_seed"]:
                counts[n] = {"zip": runs["small_service"][0], "seed": runs["small_seed"][0]}
                if runs["small_perfile"]:
                    counts[n]["per_file"] = runs["small_perfile"][0]
            else:
                counts[n] = {
                    "zip": bench.service(small[:n], "auto"),
                    "per_file": bench.service(small[:n], "per_file"),
                    "seed": bench.seed(small[:n]),
                }
        imports = [bench.import_seconds() for _ in range(args.import_runs if 5 in args.only else 0)]

    report(args, runs, counts, imports)
    print(
        f"\ntotal {time.monotonic() - started:.0f} s; command: python -m bench.run {' '.join(sys.argv[1:] if argv is None else argv)}"
    )
    if args.profile:
        show_profile(args.profile / "small_service.prof")
        show_profile(args.profile / "big_service.prof")
    if args.json:
        document = {
            "args": {
                k: str(v) if isinstance(v, Path) else sorted(v) if isinstance(v, set) else v
                for k, v in vars(args).items()
            },
            "runs": {k: [vars(x) for x in v] for k, v in runs.items()},
            "counts": {n: {m: vars(x) for m, x in c.items()} for n, c in counts.items()},
            "imports": imports,
        }
        args.json.write_text(json.dumps(document, indent=2))
    return 0


def report(
    args: argparse.Namespace, runs: dict[str, list[Run]], counts: dict[int, dict[str, Run]], imports: list[float]
) -> None:
    small_bytes = args.files * args.file_kib * KIB
    big_bytes = args.big_files * args.big_mib * MIB
    stream_bytes = args.stream_mib * MIB
    figures: list[Figure] = []
    if runs["small_service"]:
        speedup = [s.seconds / z.seconds for s, z in zip(runs["small_seed"], runs["small_service"], strict=True)]
        figures += [
            Figure(
                f"1  service zip, {args.files} x {args.file_kib} KiB", "s", [x.seconds for x in runs["small_service"]]
            ),
            Figure("1  seed-like baseline, same files", "s", [x.seconds for x in runs["small_seed"]]),
        ]
        if runs["small_perfile"]:
            figures.append(Figure("1  service per_file (reference)", "s", [x.seconds for x in runs["small_perfile"]]))
        figures += [
            Figure("1  service zip throughput", "MiB/s", [_mib_s(small_bytes, x) for x in runs["small_service"]]),
            Figure("1  speed-up service zip / seed", "x", speedup, ">= 8", statistics.median(speedup) >= 8),
        ]
    if runs["big_service"]:
        ratio = [r.seconds / s.seconds for r, s in zip(runs["big_raw"], runs["big_service"], strict=True)]
        figures += [
            Figure(
                f"2  service, {args.big_files} x {args.big_mib} MiB",
                "MiB/s",
                [_mib_s(big_bytes, x) for x in runs["big_service"]],
            ),
            Figure("2  raw copy (S3 GET -> XNAT PUT)", "MiB/s", [_mib_s(big_bytes, x) for x in runs["big_raw"]]),
            Figure("2  raw copy + MD5 (reference)", "MiB/s", [_mib_s(big_bytes, x) for x in runs["big_raw_md5"]]),
            Figure("2  throughput service / raw copy", "x", ratio, ">= 0.9", statistics.median(ratio) >= 0.9),
            Figure("2  RSS growth, service", "MiB", [x.growth / MIB for x in runs["big_service"]]),
            Figure("2  RSS growth, raw copy", "MiB", [x.growth / MIB for x in runs["big_raw"]]),
        ]
    if runs["stream"]:
        figures += [
            Figure(
                f"3  RSS growth streaming {args.stream_mib} MiB",
                "MiB",
                [x.growth / MIB for x in runs["stream"]],
                "< 64",
                statistics.median(x.growth for x in runs["stream"]) < 64 * MIB,
            ),
            Figure(
                f"3  service throughput, {args.stream_mib} MiB",
                "MiB/s",
                [_mib_s(stream_bytes, x) for x in runs["stream"]],
            ),
        ]
    if imports:
        figures.append(Figure("5  worker handler import, fresh interpreter", "ms", [x * 1000 for x in imports]))
    if figures:
        print_figures(
            f"Figures (median of {args.repeat} runs; figure 5 of {args.import_runs}; "
            f"catalog latency {args.catalog_latency} s)",
            figures,
        )
    if counts:
        modes = ("zip", "per_file", "seed")
        print_table(
            "4  XNAT requests per job (emulator count; zip = UPLOAD_MODE=auto; seed = seed-like baseline)",
            ["N files", *[f"{m} requests" for m in modes], "per_file - N", "zip: max PUTs in flight", "conflicts"],
            [
                [
                    str(n),
                    *[str(c[m].requests) if m in c else "-" for m in modes],
                    str(c["per_file"].requests - n) if "per_file" in c else "-",
                    str(c["zip"].max_puts_in_flight),
                    str(sum(x.conflicts for x in c.values())),
                ]
                for n, c in sorted(counts.items())
            ],
        )


if __name__ == "__main__":
    sys.exit(main())
