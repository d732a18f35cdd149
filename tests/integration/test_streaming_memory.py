"""A large object is streamed: the handler's memory grows by a small buffer, not by the object's size."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from devserver.events import sqs_event
from devserver.stack import DEMO_ACCESSION, DEMO_PROJECT, LocalStack
from xnat_upload.job.queue import JobMessage

from .conftest import make_manifest

ROOT = Path(__file__).resolve().parents[2]
MIB = 1024 * 1024

# Runs in a fresh interpreter so the measurement holds only the handler (the servers live here).
# A small warm-up job first (clients, models, pools), then the peak is reset (`clear_refs` 5) and
# the 50 MiB job runs: growth = peak during that job - RSS before it.
CHILD = """
import json, sys
import psutil
from devserver.handlers import load_handler_module
from devserver.lambda_context import LocalLambdaContext

def hwm():
    return next(int(l.split()[1]) * 1024 for l in open("/proc/self/status") if l.startswith("VmHWM:"))

app = load_handler_module("upload_worker")
warm, big = json.loads(sys.argv[1]), json.loads(sys.argv[2])
app.lambda_handler(warm, LocalLambdaContext("upload-worker", 900))
with open("/proc/self/clear_refs", "w") as f:
    f.write("5")
baseline = psutil.Process().memory_info().rss
app.lambda_handler(big, LocalLambdaContext("upload-worker", 900))
print(json.dumps({"baseline": baseline, "peak": hwm()}))
"""


def job_event(stack: LocalStack, job_id: str, manifest: dict) -> dict:
    """The worker's SQS event for a job whose manifest is put now (the queues are bypassed: the child
    process is the worker)."""
    put = stack.s3().put_object(Bucket=stack.bucket, Key=f"manifests/{job_id}.json", Body=json.dumps(manifest).encode())
    message = JobMessage(
        job_id=job_id, manifest_key=f"manifests/{job_id}.json", manifest_version=put.get("VersionId"), continuation=0
    )
    return sqs_event([message.to_body()], "arn:aws:sqs:us-east-1:123456789012:jobs.fifo", group_id="g")


def test_a_50_mib_object_streams_with_flat_memory(stack: LocalStack) -> None:
    size = 50 * MIB
    block = os.urandom(MIB)
    stack.s3().put_object(Bucket=stack.bucket, Key="net-1/upload/big/volume.nii", Body=block * 50)
    stack.s3().put_object(Bucket=stack.bucket, Key="net-1/upload/warm/up.nii", Body=block * 5)
    warm = job_event(stack, "warm", make_manifest(files_relative_paths_to_upload=["warm/up.nii"]))
    event = job_event(stack, "big", make_manifest(files_relative_paths_to_upload=["big/volume.nii"]))

    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "layers" / "xnat_upload")])}
    child = subprocess.run(
        [sys.executable, "-c", CHILD, json.dumps(warm), json.dumps(event)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert child.returncode == 0, child.stderr[-3000:]
    memory = json.loads(child.stdout.strip().splitlines()[-1])

    result = stack.read_result("big")
    assert result["status"] == "succeeded", result
    assert result["files"][0]["bytes"] == size
    assert stack.xnat.get_file(DEMO_PROJECT, DEMO_ACCESSION, "1", "NIFTI", "big/volume.nii") == block * 50
    growth = memory["peak"] - memory["baseline"]
    assert growth < 8 * MIB, f"peak RSS grew by {growth / MIB:.1f} MiB while streaming a 50 MiB object"
