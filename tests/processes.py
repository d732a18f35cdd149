"""Processes the tests start die with the test process, even when it is killed outright.

A fixture's `finally` stops what it started, but not when pytest itself is killed (a CI timeout, a
Ctrl-C twice): the child would live on, holding ports and CPU. On Linux the kernel can send the child
SIGTERM when its parent dies (`PR_SET_PDEATHSIG`); elsewhere this is plain `subprocess.Popen`.

Example::

    process = popen([sys.executable, "-m", "devserver.serve", ...], stdout=subprocess.PIPE)
"""

from __future__ import annotations

import ctypes
import signal
import subprocess
import sys
from typing import Any

PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:  # runs in the child, between fork and exec
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def popen(args: list[str], **kwargs: Any) -> subprocess.Popen[Any]:
    if sys.platform.startswith("linux"):
        kwargs.setdefault("preexec_fn", _die_with_parent)
    return subprocess.Popen(args, **kwargs)
