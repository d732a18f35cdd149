"""The deployment tools (SAM CLI, checkov) run for real on the real template, offline.

`make test` installs them into venvs of their own (.venv/tools/sam, .venv/tools/checkov, pinned in
tools/requirements-*.txt) and tells the tests where through SAM_BIN and CHECKOV_BIN; run elsewhere, a test whose tool
is missing is skipped with that reason. Every tool runs with no network beyond loopback: in a network namespace of its
own when this machine allows one (`unshare --net`), which proves it, and always with the tools' own network features
off (SAM's telemetry and weekly version check, checkov's downloads, boto3's instance-metadata lookup).
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import pytest

from tests.processes import popen

ROOT = Path(__file__).resolve().parents[2]
# Relative paths (as the Makefile passes them) are relative to the repository's root.
SAM = ROOT / os.environ.get("SAM_BIN", ".venv/tools/sam/bin/sam")
CHECKOV = ROOT / os.environ.get("CHECKOV_BIN", ".venv/tools/checkov/bin/checkov")
WHEELHOUSE = ROOT / os.environ.get("SAM_WHEELHOUSE", ".venv/wheelhouse")
NETWORK_NAMESPACE = ("unshare", "--map-root-user", "--net")


def _installed(tool: Path, requirements: str) -> Path:
    if not tool.exists():
        pytest.skip(f"{tool} is not installed: make test installs it from tools/{requirements}")
    return tool


@pytest.fixture(scope="session")
def sam_cli() -> Path:
    return _installed(SAM, "requirements-sam.txt")


@pytest.fixture(scope="session")
def checkov_cli() -> Path:
    return _installed(CHECKOV, "requirements-checkov.txt")


@pytest.fixture(scope="session")
def tool_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """An environment in which the tools reach nothing: no telemetry, no version check, no AWS account."""
    app_dir = tmp_path_factory.mktemp("sam-cli-app")
    # SAM CLI keeps its settings here; a version check done "just now" means no call to PyPI for a week.
    (app_dir / "metadata.json").write_text(json.dumps({"telemetryEnabled": False, "lastVersionCheck": time.time()}))
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(
        __SAM_CLI_APP_DIR=str(app_dir),
        SAM_CLI_TELEMETRY="0",
        AWS_DEFAULT_REGION="us-east-1",
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_EC2_METADATA_DISABLED="true",
    )
    return env


@functools.cache
def _network_namespace_works() -> bool:
    if shutil.which(NETWORK_NAMESPACE[0]) is None:
        return False
    probe = subprocess.run([*NETWORK_NAMESPACE, "true"], capture_output=True, timeout=30, check=False)
    return probe.returncode == 0


def run_offline(
    argv: Sequence[str | Path], *, env: Mapping[str, str], timeout: float, cwd: Path = ROOT
) -> subprocess.CompletedProcess[str]:
    """Run a tool to completion (stdout and stderr together), without network where the machine allows it.

    The tool gets a process group of its own, killed whatever happens, so nothing it started outlives the test.
    """
    command = [*(NETWORK_NAMESPACE if _network_namespace_works() else ()), *map(str, argv)]
    process = popen(
        command,
        cwd=cwd,
        env=dict(env),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        output, _ = process.communicate(timeout=timeout)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    return subprocess.CompletedProcess(command, process.returncode, output, None)


def once_per_session(tmp_path_factory: pytest.TempPathFactory, name: str, produce: Callable[[Path], None]) -> Path:
    """`produce(folder)` once per test session, whichever xdist worker asks first; returns the folder.

    The first worker produces under a lock in the session's shared temporary folder; the other waits for it and
    reuses the result (pytest-xdist's --dist loadgroup does not group tests under pytest 9.2). `produce` records
    its outcome in the folder: an exception leaves no "done" mark, so the next asker tries again.
    """
    shared = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        shared = shared.parent  # the session's folder, above every worker's own
    folder, done = shared / name, shared / f"{name}.done"
    with (shared / f"{name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not done.exists():
            folder.mkdir(exist_ok=True)
            produce(folder)
            done.touch()
    return folder
