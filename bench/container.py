"""One Lambda container of the queue flow, for `bench.queue`: `python -m bench.container '<json spec>'`.

Lambda never runs two invocations in one container at once, and the handlers rely on it: the
worker's Powertools batch processor is a module-level object that keeps the current batch on
itself. So each container is a process of its own, polling its queue through `SqsEventSource`
(our stand-in for the event source mapping) one invocation at a time. The worker's
MaximumConcurrency is the number of worker containers `bench.queue` starts.

moto decides which FIFO groups are free from a snapshot taken at the start of each receive, so two
receives at once could both take one group; SQS serialises that on its side. Here the worker
containers take one receive at a time through a lock file (`ProcessLock`).

Protocol on stdout (other lines, the handlers' own logs, are ignored by the parent):

* `READY`: imports done, clients created, polling starts;
* `FINISHED <job_id> <unix time>`: after a worker invocation, the job's result exists;
* `QUEUED <records> <unix time>`: after an intake invocation, how many notifications it handled;
* `BENCH-RESULT {json}`: after the parent closed stdin and the poller stopped (an invocation in
  flight ends first): peak RSS (VmHWM, this process only), RSS before polling, poller statistics.
"""

from __future__ import annotations

import fcntl
import json
import os
import sys
import threading
import time
from dataclasses import asdict
from typing import Any

from bench.memory import proc_status
from devserver.event_source import SqsEventSource


class ProcessLock:
    """A lock shared by every process that opens the same file (flock), and by this process's threads."""

    def __init__(self, path: str) -> None:
        self._threads = threading.Lock()
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)

    def __enter__(self) -> ProcessLock:
        self._threads.acquire()
        fcntl.flock(self._fd, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc: object) -> None:
        fcntl.flock(self._fd, fcntl.LOCK_UN)
        self._threads.release()


class ContainerEventSource(SqsEventSource):
    """`SqsEventSource` whose receives are one at a time across processes (see the module docstring)."""

    def __init__(self, *args: Any, lock_path: str | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if lock_path:
            self._receive_lock = ProcessLock(lock_path)  # type: ignore[assignment]


def main() -> int:
    spec = json.loads(sys.argv[1])
    function = spec["function"]  # "manifest_trigger" or "upload_worker"

    import boto3
    from botocore.exceptions import ClientError

    from devserver.handlers import load_handler_module

    app = load_handler_module(function)
    # What a warm container already holds: the handler's pooled clients, the job's lazy imports.
    import xnat_upload.store
    import xnat_upload.transfer.engine
    import xnat_upload.xnat.client  # noqa: F401
    from xnat_upload import Settings
    from xnat_upload.aws import s3_client, sqs_client

    settings = Settings.from_env()
    s3 = s3_client(settings)
    sqs_client(settings)
    reported: set[str] = set()

    def finished(job_id: str) -> bool:
        try:
            s3.head_object(Bucket=settings.data_bucket, Key=settings.results_key(job_id))
        except ClientError:
            return False
        return True

    profiler = None
    if spec.get("profile"):  # every invocation of this container, on its poller thread
        import cProfile

        profiler = cProfile.Profile()

    def handler(event: dict[str, Any], context: Any) -> Any:
        try:
            if profiler is not None:
                return profiler.runcall(app.lambda_handler, event, context)
            return app.lambda_handler(event, context)
        finally:
            if function == "manifest_trigger":
                print(f"QUEUED {len(event['Records'])} {time.time()}", flush=True)
            if function == "upload_worker":
                for record in event["Records"]:
                    job_id = json.loads(record["body"]).get("job_id")
                    if job_id and job_id not in reported and finished(job_id):
                        reported.add(job_id)
                        print(f"FINISHED {job_id} {time.time()}", flush=True)

    source = ContainerEventSource(
        boto3.client("sqs"),  # the event source's own client: Lambda's poller is not the function
        spec["queue_url"],
        handler,
        batch_size=int(spec["batch_size"]),
        function_timeout=float(spec["timeout"]),
        maximum_concurrency=1,
        function_name=function.replace("_", "-"),
        idle_pause=float(spec.get("idle_pause", 0.2)),
        lock_path=spec.get("lock"),
    )
    baseline = proc_status("VmRSS")
    print("READY", flush=True)
    source.start()
    try:
        sys.stdin.read()  # until the parent closes it (or dies)
    finally:
        source.stop(wait=float(spec["timeout"]) + 60)  # an invocation in flight ends, as in Lambda
    if profiler is not None:
        profiler.dump_stats(f"{spec['profile']}/{function}-{os.getpid()}.prof")
    out = {
        "function": function,
        "baseline_rss": baseline,
        "peak_rss": proc_status("VmHWM"),
        "stats": asdict(source.stats),
    }
    print("BENCH-RESULT " + json.dumps(out), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
