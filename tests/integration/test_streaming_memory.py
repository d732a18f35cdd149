"""A large object is streamed: the handler's memory grows by a small buffer, not by the object's size."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from devserver.stack import DEMO_ACCESSION, DEMO_PROJECT, LocalStack

from .conftest import make_manifest

ROOT = Path(__file__).resolve().parents[2]
MIB = 1024 * 1024

# Runs in a fresh interpreter so the measurement holds only the handler (the servers live here).
# Peak from VmHWM: ru_maxrss would carry the forking parent's peak across exec.
CHILD = """
import json, sys
import psutil
from devserver.handlers import load_handler_module
from devserver.lambda_context import LocalLambdaContext

app = load_handler_module("manifest_trigger")
import xnat_upload.transfer.engine, xnat_upload.xnat.client, xnat_upload.store  # noqa: F401  (all imports done)
baseline = psutil.Process().memory_info().rss
app.lambda_handler(json.loads(sys.argv[1]), LocalLambdaContext("manifest-trigger", 900))
peak = next(int(l.split()[1]) * 1024 for l in open("/proc/self/status") if l.startswith("VmHWM:"))
print(json.dumps({"baseline": baseline, "peak": peak}))
"""


def test_a_50_mib_object_streams_with_flat_memory(stack: LocalStack) -> None:
    size = 50 * MIB
    block = os.urandom(MIB)
    stack.s3().put_object(Bucket=stack.bucket, Key="net-1/upload/big/volume.nii", Body=block * 50)
    event = stack.put_manifest("big", make_manifest(files_relative_paths_to_upload=["big/volume.nii"]))

    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "layers" / "xnat_upload")])}
    child = subprocess.run(
        [sys.executable, "-c", CHILD, json.dumps(event)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )
    assert child.returncode == 0, child.stderr[-3000:]
    memory = json.loads(child.stdout.strip().splitlines()[-1])

    result = stack.read_result("big")
    assert result["status"] == "succeeded", result
    assert result["files"][0]["bytes"] == size
    assert stack.xnat.get_file(DEMO_PROJECT, DEMO_ACCESSION, "1", "NIFTI", "big/volume.nii") == block * 50
    growth = memory["peak"] - memory["baseline"]
    assert growth < 16 * MIB, f"peak RSS grew by {growth / MIB:.1f} MiB while streaming a 50 MiB object"
