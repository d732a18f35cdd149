"""One measured party, run in a fresh interpreter by `bench.run`: `python -m bench.child '<json spec>'`.

Each party does its imports and creates its clients first, then takes the baseline RSS, then runs
the timed work. Peak memory is VmHWM from /proc/self/status (this process only); `ru_maxrss` is
not used because it carries the forking parent's peak across exec. The last stdout line is
`BENCH-RESULT {json}`.

Parties:

* `service`: the real upload worker (`functions/upload_worker/app.py:lambda_handler`) on the SQS
  FIFO job event JobQueue.fifo delivers for a manifest the parent put (`JOB_QUEUE_URL` names a
  real FIFO queue on the bench's moto server, where a continuation would go).
* `seed`: what the seed did, over S3: log in once, look up project and session, create scan and
  resource, then for each file sequentially a full GET of the XNAT file URL (its existence check),
  the S3 object read whole into memory, one `PUT ?inbody=true`.
* `raw`: the floor for one big file: one streamed S3 GET piped into one XNAT PUT, nothing else
  (with `md5`: the same, hashing the bytes on the way, to show what the MD5 costs).
* `floor`: the physical floor for many small files: every object fetched whole with 32 threads,
  then one stored zip of them all in one `PUT ?extract=true`; no checks, no lookups, no logic.
* `flow`: the whole service from the S3 event to the result, in one warm process: the intake
  handler (`functions/manifest_trigger/app.py`) on the intake queue's record for the manifest's S3
  event, then the worker handler on the job message the intake sent (received from the real FIFO
  job queue, deleted after). Timed: the two handlers (`intake_seconds` + `worker_seconds`); the
  receive between them is Lambda's event source mapping, not the service.
* `import`: time to import the worker handler module in a fresh interpreter.
"""

from __future__ import annotations

import hashlib
import json
import sys
import time
from typing import Any
from urllib.parse import quote

from bench.memory import proc_status

MIB = 1024 * 1024


def _import_time() -> dict[str, Any]:
    started = time.perf_counter()
    from devserver.handlers import load_handler_module

    load_handler_module("upload_worker")
    return {"seconds": time.perf_counter() - started}


def _service(spec: dict[str, Any]) -> Any:
    from devserver.handlers import load_handler_module
    from devserver.lambda_context import LocalLambdaContext

    app = load_handler_module("upload_worker")
    # Everything the job imports lazily, and the pooled clients a warm container already holds.
    import xnat_upload.store
    import xnat_upload.transfer.engine
    import xnat_upload.xnat.client  # noqa: F401
    from xnat_upload import Settings
    from xnat_upload.aws import s3_client, sqs_client

    settings = Settings.from_env()
    s3_client(settings)
    sqs_client(settings)

    def run() -> Any:
        answer = app.lambda_handler(spec["event"], LocalLambdaContext("upload-worker", 900.0))
        if answer.get("batchItemFailures"):
            raise RuntimeError(f"the worker reported its job message as failed: {answer}")
        return answer

    return run


def _flow(spec: dict[str, Any]) -> Any:
    from devserver.handlers import load_handler_module
    from devserver.lambda_context import LocalLambdaContext

    intake = load_handler_module("manifest_trigger")
    worker = load_handler_module("upload_worker")
    # What a warm container already holds (see `_service`), and the ledger's and events' clients.
    import xnat_upload.store
    import xnat_upload.transfer.engine
    import xnat_upload.xnat.client  # noqa: F401
    from xnat_upload import Settings
    from xnat_upload.aws import s3_client, sqs_client
    from xnat_upload.job import events
    from xnat_upload.job.ledger import ledger_for

    settings = Settings.from_env()
    s3_client(settings)
    sqs = sqs_client(settings)
    if settings.jobs_table:
        ledger_for(settings)
        events._events_client()

    def failed(answer: Any, who: str) -> None:
        if answer.get("batchItemFailures"):
            raise RuntimeError(f"the {who} reported its record as failed: {answer}")

    def run() -> dict[str, Any]:
        started = time.perf_counter()
        failed(intake.lambda_handler(spec["event"], LocalLambdaContext("manifest-trigger", 60.0)), "intake")
        intake_seconds = time.perf_counter() - started
        received = sqs.receive_message(
            QueueUrl=spec["job_queue_url"], MaxNumberOfMessages=1, AttributeNames=["All"], WaitTimeSeconds=5
        ).get("Messages", [])
        if len(received) != 1:
            raise RuntimeError(f"the intake queued {len(received)} job messages, not 1")
        message = received[0]
        record = {
            "messageId": message["MessageId"],
            "receiptHandle": message["ReceiptHandle"],
            "body": message["Body"],
            "attributes": dict(message.get("Attributes", {})),
            "messageAttributes": {},
            "md5OfBody": message["MD5OfBody"],
            "eventSource": "aws:sqs",
            "eventSourceARN": spec["job_queue_arn"],
            "awsRegion": spec["job_queue_arn"].split(":")[3],
        }
        handed = time.perf_counter()
        failed(worker.lambda_handler({"Records": [record]}, LocalLambdaContext("upload-worker", 900.0)), "worker")
        worker_seconds = time.perf_counter() - handed
        sqs.delete_message(QueueUrl=spec["job_queue_url"], ReceiptHandle=message["ReceiptHandle"])
        return {"intake_seconds": intake_seconds, "worker_seconds": worker_seconds}

    return run


def _xnat_session(spec: dict[str, Any]) -> Any:
    import requests

    session = requests.Session()
    login = session.post(spec["xnat_url"] + "/data/JSESSION", auth=(spec["user"], spec["password"]), timeout=30)
    login.raise_for_status()
    return session


def _seed(spec: dict[str, Any]) -> Any:
    import boto3

    s3 = boto3.client("s3")
    base = spec["xnat_url"]

    def run() -> dict[str, Any]:
        session = _xnat_session(spec)
        projects = session.get(base + "/data/projects", params={"format": "json"}, timeout=30)
        projects.raise_for_status()
        project = next(r["ID"] for r in projects.json()["ResultSet"]["Result"] if r["secondary_ID"] == spec["chp"])
        found = session.get(
            f"{base}/data/projects/{project}/experiments/{spec['accession']}", params={"format": "json"}, timeout=30
        )
        found.raise_for_status()
        fields = found.json()["items"][0]["data_fields"]
        scan = f"{base}/data/projects/{project}/subjects/{fields['subject_ID']}/experiments/{fields['ID']}/scans/{spec['scan']}"
        session.put(scan, params={"xsiType": "xnat:mrScanData"}, timeout=30).raise_for_status()
        resource = session.put(f"{scan}/resources/{spec['resource']}", timeout=30)
        if resource.status_code not in (200, 409):
            resource.raise_for_status()
        uploaded = 0
        for path in spec["paths"]:
            url = f"{scan}/resources/{spec['resource']}/files/{quote(path.rsplit('/', 1)[-1])}"
            existing = session.get(url, timeout=120)  # the seed's existence check: downloads the file
            if existing.status_code == 200:
                raise RuntimeError(f"{path} already exists")
            body = s3.get_object(Bucket=spec["bucket"], Key=spec["prefix"] + path)["Body"].read()
            put = session.put(url, params={"inbody": "true"}, data=body, timeout=120)
            put.raise_for_status()
            uploaded += 1
        session.delete(base + "/data/JSESSION", timeout=30)
        return {"uploaded": uploaded}

    return run


def _hashed(chunks: Any, digest: Any) -> Any:
    for chunk in chunks:
        digest.update(chunk)
        yield chunk


class _SizedChunks:
    """An iterable body with a length: requests sends Content-Length and the chunks as they come."""

    def __init__(self, chunks: Any, length: int) -> None:
        self._chunks = chunks
        self._length = length

    def __iter__(self) -> Any:
        return iter(self._chunks)

    def __len__(self) -> int:
        return self._length


def _raw(spec: dict[str, Any]) -> Any:
    import boto3

    s3 = boto3.client("s3")
    base = spec["xnat_url"]

    def run() -> dict[str, Any]:
        session = _xnat_session(spec)
        for path in spec["paths"]:
            obj = s3.get_object(Bucket=spec["bucket"], Key=spec["prefix"] + path)
            chunks = obj["Body"].iter_chunks(MIB)
            if spec.get("md5"):  # the reference variant: the same copy, hashing what it sends
                chunks = _hashed(chunks, hashlib.md5(usedforsecurity=False))
            body = _SizedChunks(chunks, obj["ContentLength"])
            put = session.put(
                f"{base}{spec['files_url']}/{quote(path)}",
                params={"inbody": "true"},
                data=body,
                headers={"Content-Type": "application/octet-stream"},
                timeout=300,
            )
            put.raise_for_status()
        return {"uploaded": len(spec["paths"])}

    return run


def _floor(spec: dict[str, Any]) -> Any:
    import io
    import zipfile
    from concurrent.futures import ThreadPoolExecutor

    import boto3
    from botocore.config import Config

    threads = int(spec.get("threads", 32))
    s3 = boto3.client("s3", config=Config(max_pool_connections=threads))
    base = spec["xnat_url"]

    def fetch(path: str) -> bytes:
        return s3.get_object(Bucket=spec["bucket"], Key=spec["prefix"] + path)["Body"].read()

    def run() -> dict[str, Any]:
        session = _xnat_session(spec)
        with ThreadPoolExecutor(max_workers=threads) as pool:
            contents = list(pool.map(fetch, spec["paths"]))
        archive = io.BytesIO()
        with zipfile.ZipFile(archive, "w", zipfile.ZIP_STORED) as zipped:
            for path, data in zip(spec["paths"], contents, strict=True):
                zipped.writestr(path, data)
        put = session.put(
            f"{base}{spec['files_url']}/floor.zip",
            params={"inbody": "true", "extract": "true"},
            data=archive.getbuffer(),
            headers={"Content-Type": "application/zip"},
            timeout=300,
        )
        put.raise_for_status()
        return {"uploaded": len(contents)}

    return run


def main() -> int:
    spec = json.loads(sys.argv[1])
    mode = spec["mode"]
    if mode == "import":
        print("BENCH-RESULT " + json.dumps(_import_time()), flush=True)
        return 0
    run = {"service": _service, "flow": _flow, "seed": _seed, "raw": _raw, "floor": _floor}[mode](spec)
    baseline = proc_status("VmRSS")
    profiler = None
    if spec.get("profile"):
        import cProfile

        profiler = cProfile.Profile()
        profiler.enable()
    started = time.perf_counter()
    answer = run()
    seconds = time.perf_counter() - started
    if profiler is not None:
        profiler.disable()
        profiler.dump_stats(spec["profile"])
    peak = proc_status("VmHWM")
    out = {"seconds": seconds, "baseline_rss": baseline, "peak_rss": peak, "answer": answer}
    print("BENCH-RESULT " + json.dumps(out, default=str), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
