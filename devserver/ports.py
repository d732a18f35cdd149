"""Ports the local stack needs, checked before anything starts, so a taken one is an error that names its flag.

Without the check moto's `ThreadedMotoServer.start()` waits forever for a server that failed to bind (Ctrl-C
does not stop it), and the other servers raise a bare `OSError: [Errno 98]` that names neither port nor flag.

Example::

    check_ports("127.0.0.1", {"--s3-port": 4566, "--xnat-port": 8080})  # raises PortInUseError for a taken one
"""

from __future__ import annotations

import errno
import socket
from collections.abc import Mapping


class PortInUseError(OSError):
    """Ports something else listens on; the message names each with the flag that moves it."""

    def __init__(self, host: str, taken: Mapping[str, int], reasons: Mapping[str, str] | None = None) -> None:
        self.host = host
        self.taken = dict(taken)
        reasons = reasons or {}
        lines = [
            f"port {port} on {host} {reasons.get(flag, 'is in use')} (set another with {flag})"
            for flag, port in taken.items()
        ]
        example = " ".join(f"{flag} {port + 1}" for flag, port in taken.items())
        lines.append(
            f"another `make serve` may still run; stop it, or start on free ports: make serve ARGS='{example}' "
            "(0 picks any free port)"
        )
        super().__init__(errno.EADDRINUSE, "\n".join(lines))
        self.message = "\n".join(lines)

    def __str__(self) -> str:
        return self.message


def why_not_free(host: str, port: int) -> str | None:
    """None when a server could listen on (host, port) now, else why not. Port 0 (any free port) always can.
    SO_REUSEADDR as the servers set it: a port left in TIME_WAIT by a stopped run is free to them, so to this."""
    if port == 0:
        return None
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return "is in use"
            if exc.errno == errno.EACCES:
                return "needs privileges this user lacks"
            return f"cannot be used: {exc.strerror or exc}"
    return None


def check_ports(host: str, ports: Mapping[str, int]) -> None:
    """Raise PortInUseError naming every flag whose port cannot be listened on at `host`."""
    reasons = {flag: why for flag, port in ports.items() if (why := why_not_free(host, port)) is not None}
    if reasons:
        raise PortInUseError(host, {flag: ports[flag] for flag in reasons}, reasons)
