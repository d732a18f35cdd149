"""Memory figures of the current process, as the kernel counts them (Linux)."""

from __future__ import annotations


def proc_status(field: str) -> int:
    """A `VmXXX:` line of /proc/self/status, in bytes: `VmHWM` is this process's peak RSS alone
    (`ru_maxrss` would carry a forking parent's peak across exec), `VmRSS` its RSS now."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"{field} not in /proc/self/status")
