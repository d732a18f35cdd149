"""Processes the tests start die with the test process, even when it is killed outright.

A fixture's `finally` stops what it started, but not when pytest itself is killed (a CI timeout, a
Ctrl-C twice): the child would live on, holding ports and CPU. On Linux the kernel can send the child
SIGTERM when its parent dies (`PR_SET_PDEATHSIG`); elsewhere this is plain `subprocess.Popen`.

Example::

    process = popen([sys.executable, "-m", "devserver.serve", ...], stdout=subprocess.PIPE)
"""

from __future__ import annotations

import ctypes
import os
import re
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:  # runs in the child, between fork and exec
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def popen(args: list[str], **kwargs: Any) -> subprocess.Popen[Any]:
    if sys.platform.startswith("linux"):
        kwargs.setdefault("preexec_fn", _die_with_parent)
    return subprocess.Popen(args, **kwargs)


@dataclass
class Served:
    """What `make serve` printed: its `export NAME=value` lines and the URLs of S3, XNAT and the API; the folder
    where it wrote env.sh and env.json (what it writes to .local/ for a user)."""

    exports: dict[str, str] = field(default_factory=dict)
    urls: dict[str, str] = field(default_factory=dict)
    env_dir: Path = field(default_factory=Path)
    printed_later: str = ""  # what it printed after the exports, until it was stopped (filled in when it ends)


@contextmanager
def local_stack_served(*args: str) -> Iterator[Served]:
    """`python -m devserver.serve` (what `make serve` runs) on free ports, until the block ends; its env files
    go to a temporary folder (never the repository's .local/, which a user's own `make serve` owns)."""
    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(root), str(root / "layers" / "xnat_upload")])}
    ports = ("--s3-port", "0", "--xnat-port", "0", "--api-port", "0")
    with tempfile.TemporaryDirectory(prefix="serve-env-") as env_dir:
        process = popen(
            [sys.executable, "-m", "devserver.serve", *ports, "--env-dir", env_dir, *args],
            cwd=root,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        yield from _served(process, Served(env_dir=Path(env_dir)))


def _served(process: subprocess.Popen[str], served: Served) -> Iterator[Served]:
    printed: list[str] = []
    assert process.stdout is not None
    try:
        for line in process.stdout:
            printed.append(line)
            for name, pattern in (("s3", r"S3 \(moto server\)\s+(\S+)"), ("xnat", r"XNAT \(emulator\)\s+(\S+)")):
                if match := re.search(pattern, line):
                    served.urls[name] = match.group(1)
            if match := re.match(r"\s*export (\w+)=(\S+)", line):
                served.exports[match.group(1)] = match.group(2)
                if match.group(1) == "XNAT_UPLOAD_API":
                    served.urls["api"] = match.group(2)
                    break
        assert set(served.urls) == {"s3", "xnat", "api"}, "".join(printed[-40:])
        yield served
    finally:
        stop(process)
        served.printed_later = process.stdout.read()


def stop(process: subprocess.Popen[Any], grace: float = 15.0) -> None:
    """SIGTERM, then SIGKILL after `grace` seconds: a test never ends with its process still running."""
    process.terminate()
    try:
        process.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)
