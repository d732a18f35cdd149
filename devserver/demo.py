"""The whole flow on this machine: `python -m devserver.demo` (what `make demo` runs).

Starts moto's server (S3 and SQS) and the XNAT emulator on loopback, with the queues of template.yaml,
seeds sample images for the sample manifest (`events/manifest.json`) and puts the manifest. The
bucket's notification puts it on the intake queue; the real intake handler validates it and queues
the job on the FIFO job queue; the real worker uploads it. Then the result manifest is printed, every
URL checked against XNAT, and the job's ledger item and its `Upload Job Finished` event (EventBridge,
through a rule to a local queue, as a subscriber of yours would get it) are printed.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import os
import random
import sys
from pathlib import Path

import requests

from .quiet import quiet_local_metrics
from .stack import LocalStack

ROOT = Path(__file__).resolve().parent.parent
SAMPLE_MANIFEST = ROOT / "events" / "manifest.json"


def sample_image(path: str, size: int) -> bytes:
    """Deterministic stand-in bytes: gzipped for `.gz` names, JSON for `.json`, raw otherwise."""
    rng = random.Random(path)
    if path.endswith(".json"):
        return json.dumps({"file": path, "findings": "none", "generated_by": "devserver.demo"}, indent=2).encode()
    payload = rng.randbytes(size)
    return gzip.compress(payload, compresslevel=1, mtime=0) if path.endswith(".gz") else payload


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--manifest", type=Path, default=SAMPLE_MANIFEST, help="job manifest to run")
    parser.add_argument("--job-id", default="demo-job", help="the manifest goes to manifests/<job-id>.json")
    parser.add_argument("--image-bytes", type=int, default=256 * 1024, help="size of each generated image")
    args = parser.parse_args(argv)

    manifest = json.loads(args.manifest.read_text())
    os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "WARNING")
    quiet_local_metrics()  # EMF lines would bury the result
    with LocalStack() as stack:
        os.environ.update(stack.environment())
        print(f"S3 (moto server):  {stack.aws.url}   bucket {stack.bucket}")
        print(
            f"XNAT (emulator):   {stack.xnat.url}   project {manifest['central_hub_project_id']} / {manifest['accession_id']}"
        )
        for path in manifest["files_relative_paths_to_upload"]:
            key = stack.put_image(manifest["net_id"], path, sample_image(path, args.image_bytes))
            print(f"  seeded s3://{stack.bucket}/{key}")
        stack.put_manifest(args.job_id, manifest)
        print(f"put s3://{stack.bucket}/manifests/{args.job_id}.json: S3 -> intake queue -> intake -> job queue")
        invocations = stack.drain()
        print(f"ran {invocations} function invocations (intake and worker) until the queues were empty\n")

        result = stack.read_result(args.job_id)
        print(f"result manifest s3://{stack.bucket}/results/{args.job_id}.json:")
        print(json.dumps(result, indent=2))
        print("\nfiles now in XNAT:")
        session = requests.Session()
        session.auth = (stack.xnat_user, stack.xnat_password)
        for entry in result["files"] if result else []:
            if entry["status"] != "uploaded":
                continue
            served = session.get(entry["url"], timeout=30)
            ok = served.ok and hashlib.md5(served.content).hexdigest() == entry.get("md5")  # noqa: S324 - XNAT's digest
            print(f"  {'OK ' if ok else 'BAD'} {entry['url']}")

        item = stack.read_job(args.job_id) or {}
        print(f"\njobs ledger ({stack.environment()['JOBS_TABLE']}): {args.job_id} is {item.get('state')}/"
              f"{item.get('status')}, {item.get('files_done')}/{item.get('files_total')} files in XNAT")  # fmt: skip
        events = [e for e in stack.job_events() if e.get("detail", {}).get("job_id") == args.job_id]
        print(f"job-end event ({len(events)} received, EventBridge -> rule -> queue):")
        for event in events:
            print(json.dumps(event, indent=2))
        return 0 if result and result["status"] == "succeeded" and len(events) == 1 else 1


if __name__ == "__main__":
    sys.exit(main())
