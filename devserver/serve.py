"""The local stack: `python -m devserver.serve` (what `make serve` runs). No Docker, no AWS account.

Runs, on loopback: moto's server (S3, SQS, DynamoDB), the XNAT emulator with the demo project, the
queues of template.yaml (moto's bucket notification feeds the intake queue, as S3 does in AWS),
pollers standing in for Lambda's event source mappings (the intake and the worker, the worker at
`--worker-concurrency`), and the upload API handler behind a local API Gateway. Prints the
endpoints and the environment to export; the CLI, curl and the tests work against it as against AWS.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading

from .local_api import LocalApiServer
from .local_s3 import LocalAws
from .stack import LocalStack
from .xnat_emulator import XnatEmulator


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--s3-port", type=int, default=4566)
    parser.add_argument("--xnat-port", type=int, default=8080)
    parser.add_argument("--api-port", type=int, default=3000)
    parser.add_argument("--catalog-write-latency", type=float, default=0.0, help="emulated XNAT catalog work (s)")
    parser.add_argument("--worker-concurrency", type=int, default=4, help="the worker's MaximumConcurrency")
    args = parser.parse_args(argv)

    stack = LocalStack(
        aws=LocalAws(port=args.s3_port).start(),
        xnat=XnatEmulator(
            "svc-uploader", "local-only-password", port=args.xnat_port, catalog_write_latency=args.catalog_write_latency
        ),
        worker_concurrency=args.worker_concurrency,
    )
    stack.start()
    environment = stack.environment(PROGRESS_INTERVAL_SECONDS="1")
    os.environ.update(environment)
    os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "WARNING")
    os.environ.setdefault("POWERTOOLS_METRICS_DISABLED", "true")  # EMF lines would bury what matters here
    stack.start_pollers()
    api = LocalApiServer(port=args.api_port).start()

    print("local stack ready (Ctrl-C to stop)")
    print(f"  S3 (moto server)   {stack.aws.url}   bucket {stack.bucket}")
    print(f"  XNAT (emulator)    {stack.xnat.url}   project PRJ001 = CHP-001, session ACC0001")
    print(f"  upload API         {api.url}   PUT /upload/images/{{net_id}}, POST /jobs, GET /jobs/{{id}}")
    print(f"  job queue          {stack.queue_urls['jobs']}   worker MaximumConcurrency {args.worker_concurrency}")
    print(f"  manifests put under s3://{stack.bucket}/manifests/ run automatically (intake queue -> job queue)\n")
    print("export these to use the CLI or boto3 against it:")
    for name in (
        "AWS_ENDPOINT_URL",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_DEFAULT_REGION",
        "DATA_BUCKET",
        "JOB_QUEUE_URL",
    ):
        print(f"  export {name}={environment[name]}")
    print(f"  export XNAT_UPLOAD_API={api.url}", flush=True)

    stopped = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stopped.set())
    stopped.wait()
    api.stop()
    stack.stop()
    stack.aws.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
