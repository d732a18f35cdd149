"""The local stack: `python -m devserver.serve` (what `make serve` runs). No Docker, no AWS account.

Runs, on this machine: moto's server (S3, SQS, DynamoDB, Secrets Manager), the XNAT emulator with the demo
project, the queues of template.yaml (moto's bucket notification feeds the intake queue, as S3 does in AWS),
pollers standing in for Lambda's event source mappings (the intake and the worker, the worker at
`--worker-concurrency`), and the upload API handler behind a local API Gateway. Seeds the images of
events/manifest.json, and what `sam local` functions read through events/env.json: the XNAT service account
as a secret, the intake's idempotency table. Prints the endpoints and the environment to export; the CLI,
curl, `sam local` and the tests work against it as against AWS.

`--host 0.0.0.0` lets containers (`sam local invoke`/`start-api`) reach moto and the XNAT emulator through
`host.docker.internal`; `--no-pollers` leaves the queues to them.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
from pathlib import Path

from .local_api import LocalApiServer
from .local_s3 import REGION, LocalAws
from .stack import LocalStack
from .template import create_table
from .xnat_emulator import XnatEmulator

DEFAULT_S3_PORT = 4566
DEFAULT_XNAT_PORT = 8080
DEFAULT_API_PORT = 3000
SAMPLE_MANIFEST = Path(__file__).resolve().parent.parent / "events" / "manifest.json"
# What the functions of `sam local` find through events/env.json: the XNAT service account where AWS keeps it
# (the template gives the worker a secret, never plain credentials) and the intake's idempotency table.
XNAT_SECRET_NAME = "xnat-upload-local"
IDEMPOTENCY_TABLE = "xnat-upload-idempotency"
# Printed as `export NAME=value` (loopback addresses) for the CLI, boto3 and curl on this machine.
EXPORTS = (
    "AWS_ENDPOINT_URL",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_DEFAULT_REGION",
    "DATA_BUCKET",
    "JOB_QUEUE_URL",
    "JOBS_TABLE",
)
WILDCARD_HOSTS = {"0.0.0.0", ""}


def seed_sample_images(stack: LocalStack, manifest_path: Path = SAMPLE_MANIFEST) -> list[str]:
    """Put a small object for every file of the sample manifest, where the manifest says they are."""
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    return [
        stack.put_image(manifest["net_id"], path, f"sample {path}\n".encode())
        for path in manifest["files_relative_paths_to_upload"]
    ]


def prepare_for_sam_local(stack: LocalStack) -> dict[str, str]:
    """Create the XNAT secret and the idempotency table that events/env.json names; returns their names."""
    secret = stack.aws.client("secretsmanager").create_secret(
        Name=XNAT_SECRET_NAME,
        SecretString=json.dumps({"username": stack.xnat_user, "password": stack.xnat_password}),
    )
    create_table(stack.aws.client("dynamodb"), "IdempotencyTable", IDEMPOTENCY_TABLE)
    return {"XNAT_SECRET_ARN": str(secret["ARN"]), "IDEMPOTENCY_TABLE": IDEMPOTENCY_TABLE}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--host",
        default="127.0.0.1",
        help="where moto and the XNAT emulator listen (default 127.0.0.1). For sam local: 0.0.0.0, or the docker "
        "bridge's address, where containers arrive through host.docker.internal. The local API stays on 127.0.0.1",
    )
    parser.add_argument("--s3-port", type=int, default=DEFAULT_S3_PORT)
    parser.add_argument("--xnat-port", type=int, default=DEFAULT_XNAT_PORT)
    parser.add_argument("--api-port", type=int, default=DEFAULT_API_PORT)
    parser.add_argument("--catalog-write-latency", type=float, default=0.0, help="emulated XNAT catalog work (s)")
    parser.add_argument("--worker-concurrency", type=int, default=4, help="the worker's MaximumConcurrency")
    parser.add_argument(
        "--no-pollers",
        action="store_true",
        help="run neither the intake nor the worker here: queued messages wait for sam local invoke",
    )
    parser.add_argument("--no-samples", action="store_true", help="do not seed the images of events/manifest.json")
    args = parser.parse_args(argv)

    # Servers listening on every interface are still reached, from this machine, at the loopback address.
    client_host = "127.0.0.1" if args.host in WILDCARD_HOSTS else args.host
    aws = LocalAws(host=args.host, port=args.s3_port).start()
    aws.url = f"http://{client_host}:{aws.url.rsplit(':', 1)[1]}"
    stack = LocalStack(
        aws=aws,
        xnat=XnatEmulator(
            "svc-uploader",
            "local-only-password",
            host=args.host,
            port=args.xnat_port,
            catalog_write_latency=args.catalog_write_latency,
        ),
        worker_concurrency=args.worker_concurrency,
    )
    stack.start()
    xnat_url = f"http://{client_host}:{stack.xnat.url.rsplit(':', 1)[1]}"
    environment = stack.environment(XNAT_URL=xnat_url, PROGRESS_INTERVAL_SECONDS="1")
    os.environ.update(environment)
    os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "WARNING")
    os.environ.setdefault("POWERTOOLS_METRICS_DISABLED", "true")  # EMF lines would bury what matters here
    sam_local = prepare_for_sam_local(stack)
    samples = [] if args.no_samples else seed_sample_images(stack)
    if not args.no_pollers:
        stack.start_pollers()
    api = LocalApiServer(port=args.api_port).start()

    print("local stack ready (Ctrl-C to stop)")
    print(f"  S3 (moto server)   {stack.aws.url}   bucket {stack.bucket}")
    print(f"  XNAT (emulator)    {xnat_url}   project PRJ001 = CHP-001, session ACC0001")
    print(f"  upload API         {api.url}   PUT /upload/images/{{net_id}}, POST /jobs, GET /jobs/{{id}}")
    print(f"  job queue          {stack.queue_urls['jobs']}   worker MaximumConcurrency {args.worker_concurrency}")
    if args.no_pollers:
        print("  no pollers: queued manifests and jobs wait for sam local invoke (the upload route answers 202)")
    else:
        print(f"  manifests put under s3://{stack.bucket}/manifests/ run automatically (intake queue -> job queue)")
    if samples:
        print(f"  sample images      s3://{stack.bucket}/{os.path.commonpath(samples)}/ (events/manifest.json's files)")
    print(
        f"  for sam local      --env-vars events/env.json: secret {sam_local['XNAT_SECRET_ARN']}, "
        f"table {sam_local['IDEMPOTENCY_TABLE']}, region {REGION}"
    )
    if args.host == "localhost" or args.host.startswith("127."):
        print("                     (on loopback, which containers on Linux cannot reach: start with --host 0.0.0.0)")
    print("\nexport these to use the CLI or boto3 against it:")
    for name in EXPORTS:
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
