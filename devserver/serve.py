"""The local stack: `python -m devserver.serve` (what `make serve` runs). No Docker, no AWS account.

Runs, on this machine: moto's server (S3, SQS, DynamoDB, Secrets Manager), the XNAT emulator with the demo
project, the queues of template.yaml (moto's bucket notification feeds the intake queue, as S3 does in AWS),
pollers standing in for Lambda's event source mappings (the intake and the worker, the worker at
`--worker-concurrency`), and the upload API handler behind a local API Gateway. Seeds the images of
events/manifest.json, and what `sam local` functions read through events/env.json: the XNAT service account
as a secret, the intake's idempotency table. Prints the endpoints and writes what to use them with, for the
ports it runs on: `.local/env.sh` (`. .local/env.sh` exports AWS_ENDPOINT_URL, DATA_BUCKET, XNAT_UPLOAD_API, ...
for the CLI, boto3 and curl) and `.local/env.json` (`sam local --env-vars`; events/env.json is the same file for
the default ports). The CLI, curl, `sam local` and the tests work against it as against AWS.

Every port is checked before anything starts: a taken one stops it at once with a message naming the flag to
change (`make serve ARGS='--s3-port 4567'`); 0 picks any free port.

`--host 0.0.0.0` lets containers (`sam local invoke`/`start-api`) reach moto and the XNAT emulator through
`host.docker.internal`; `--no-pollers` leaves the queues to them.
"""

from __future__ import annotations

import argparse
import errno
import json
import os
import re
import shlex
import signal
import sys
import threading
from pathlib import Path
from typing import Any

from .local_api import LocalApiServer
from .local_s3 import REGION, LocalAws
from .ports import PortInUseError, check_ports
from .quiet import quiet_local_metrics
from .stack import LocalStack
from .template import create_table
from .xnat_emulator import XnatEmulator

DEFAULT_S3_PORT = 4566
DEFAULT_XNAT_PORT = 8080
DEFAULT_API_PORT = 3000
ROOT = Path(__file__).resolve().parent.parent
SAMPLE_MANIFEST = ROOT / "events" / "manifest.json"
DEFAULT_ENV_DIR = ROOT / ".local"
SAM_ENV_FILE = ROOT / "events" / "env.json"  # sam local's --env-vars for make serve on its default ports
# Where a `sam local` container finds the machine that runs the stack (Linux: --add-host ...:host-gateway).
CONTAINER_HOST = "host.docker.internal"
EXIT_PORT_IN_USE = 2
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


def sam_local_env(s3_port: int, xnat_port: int, defaults: Path = SAM_ENV_FILE) -> dict[str, dict[str, str]]:
    """The `sam local --env-vars` file for a stack on these ports: events/env.json (written for the default ports,
    held to the template by tests/unit/test_sam_local_env_file.py) with its container addresses of moto and the
    XNAT emulator moved to `s3_port` and `xnat_port`; every other value as it is there."""
    moves = {
        _container_address(DEFAULT_S3_PORT): f"http://{CONTAINER_HOST}:{s3_port}",
        _container_address(DEFAULT_XNAT_PORT): f"http://{CONTAINER_HOST}:{xnat_port}",
    }
    pattern = re.compile("^(" + "|".join(re.escape(address) for address in moves) + ")(?=/|$)")
    document = json.loads(defaults.read_text(encoding="utf-8"))
    return {
        function: {name: pattern.sub(lambda m: moves[m.group(1)], value) for name, value in variables.items()}
        for function, variables in document.items()
    }


def _container_address(port: int) -> str:
    return f"http://{CONTAINER_HOST}:{port}"


def write_env_files(env_dir: Path, exports: dict[str, str], sam_env: dict[str, Any]) -> tuple[Path, Path]:
    """`env.sh` (export lines, for `. .local/env.sh`) and `env.json` (sam local's --env-vars) in `env_dir`."""
    env_dir.mkdir(parents=True, exist_ok=True)
    shell, sam = env_dir / "env.sh", env_dir / "env.json"
    lines = ["# written by `make serve` (devserver/serve.py) for the ports it runs on: . .local/env.sh"]
    lines += [f"export {name}={shlex.quote(value)}" for name, value in exports.items()]
    shell.write_text("\n".join(lines) + "\n", encoding="utf-8")
    sam.write_text(json.dumps(sam_env, indent=2) + "\n", encoding="utf-8")
    return shell, sam


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m devserver.serve",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="make serve passes options through ARGS: make serve ARGS='--s3-port 4567 --api-port 3001'",
    )
    parser.add_argument(
        "--host",
        default="127.0.0.1",
        help="where moto and the XNAT emulator listen (default 127.0.0.1). For sam local: 0.0.0.0, or the docker "
        "bridge's address, where containers arrive through host.docker.internal. The local API stays on 127.0.0.1",
    )
    parser.add_argument(
        "--s3-port",
        type=_port,
        default=DEFAULT_S3_PORT,
        help=f"port of moto's server: S3, SQS, DynamoDB, Secrets Manager (default {DEFAULT_S3_PORT}; 0: any free one)",
    )
    parser.add_argument(
        "--xnat-port",
        type=_port,
        default=DEFAULT_XNAT_PORT,
        help=f"port of the XNAT emulator (default {DEFAULT_XNAT_PORT}; 0: any free one)",
    )
    parser.add_argument(
        "--api-port",
        type=_port,
        default=DEFAULT_API_PORT,
        help=f"port of the local upload API, on 127.0.0.1 (default {DEFAULT_API_PORT}; 0: any free one)",
    )
    parser.add_argument("--catalog-write-latency", type=float, default=0.0, help="emulated XNAT catalog work (s)")
    parser.add_argument("--worker-concurrency", type=int, default=4, help="the worker's MaximumConcurrency")
    parser.add_argument(
        "--no-pollers",
        action="store_true",
        help="run neither the intake nor the worker here: queued messages wait for sam local invoke",
    )
    parser.add_argument("--no-samples", action="store_true", help="do not seed the images of events/manifest.json")
    parser.add_argument(
        "--env-dir",
        type=Path,
        default=DEFAULT_ENV_DIR,
        help="where env.sh (exports for the CLI, boto3 and curl) and env.json (sam local --env-vars) are written for "
        "the ports in use (default: .local in the repository)",
    )
    return parser


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"a port is 0 to 65535, got {port}")
    return port


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    ports = {"--s3-port": args.s3_port, "--xnat-port": args.xnat_port}
    try:
        check_ports(args.host, ports)
        check_ports("127.0.0.1", {"--api-port": args.api_port})
        return serve(args)
    except PortInUseError as exc:
        print(f"make serve: {exc}", file=sys.stderr, flush=True)
        return EXIT_PORT_IN_USE
    except OSError as exc:  # taken between the check and the bind
        if exc.errno != errno.EADDRINUSE:
            raise
        print(
            f"make serve: a port was taken while starting ({exc}); try again, or change it with {', '.join(ports)}"
            " or --api-port",
            file=sys.stderr,
            flush=True,
        )
        return EXIT_PORT_IN_USE


def serve(args: argparse.Namespace) -> int:
    """Start everything, print where it is, write the env files, run until SIGINT or SIGTERM."""
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
    quiet_local_metrics()  # EMF lines would bury what matters here
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
    exports = {name: environment[name] for name in EXPORTS} | {"XNAT_UPLOAD_API": api.url}
    s3_port, xnat_port = (int(url.rsplit(":", 1)[1]) for url in (stack.aws.url, xnat_url))
    shell_file, sam_file = write_env_files(args.env_dir, exports, sam_local_env(s3_port, xnat_port))
    print(
        f"  for sam local      --env-vars {_shown(sam_file)}: secret {sam_local['XNAT_SECRET_ARN']}, "
        f"table {sam_local['IDEMPOTENCY_TABLE']}, region {REGION}"
    )
    if args.host == "localhost" or args.host.startswith("127."):
        print("                     (on loopback, which containers on Linux cannot reach: start with --host 0.0.0.0)")
    print(
        f"\nin another terminal, to use the CLI, boto3 or curl against it: . {_shown(shell_file)}   (or export these)"
    )
    for name, value in exports.items():
        print(f"  export {name}={value}", flush=True)

    stopped = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stopped.set())
    stopped.wait()
    api.stop()
    stack.stop()
    stack.aws.stop()
    return 0


def _shown(path: Path) -> str:
    """The path relative to the working folder when it is under it (`.local/env.sh`), else absolute."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


if __name__ == "__main__":
    sys.exit(main())
