"""Absolute deadlines for HTTP calls, enforced even against a server that trickles bytes.

Socket timeouts bound each blocking `send` or `recv`, never a whole call: a listing trickled at
one byte a second, or a PUT body read at 100 KB/s, makes progress on every operation and so runs
far past any deadline. Here a call runs inside a `CallDeadline`; every socket the call uses
registers with it (the adapter's connections do that on connect and on each request), and when
the deadline passes a timer shuts those sockets down. `shutdown` wakes a thread blocked in
`send` or `recv` at once; the call then fails, and `CallDeadline.expired` tells why.

Example::

    session.mount("https://", DeadlineAdapter())
    with CallDeadline(seconds=12.5) as deadline:
        try:
            session.get(url, timeout=(5, 30))
        except requests.RequestException:
            if deadline.expired:
                ...  # cut by the deadline, not a network failure

Not covered: a TLS handshake trickled by the server is bounded by the connect timeout only (the
socket is registered once the connection is established).
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Callable
from typing import Any

from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

_current = threading.local()


class CallDeadline:
    """One call's deadline: a timer that shuts down the call's sockets when it fires."""

    def __init__(self, seconds: float) -> None:
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self._timer = threading.Timer(max(0.0, seconds), self._expire)
        self._timer.daemon = True
        self._previous: CallDeadline | None = None
        self.expired = False

    def __enter__(self) -> CallDeadline:
        self._previous = getattr(_current, "deadline", None)
        _current.deadline = self
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.cancel()
        _current.deadline = self._previous

    def start(self) -> None:
        """Run the timer without making this the calling thread's deadline (for a deadline that
        sockets of several threads register with explicitly, as S3's do)."""
        self._timer.start()

    def cancel(self) -> None:
        """Stop the timer; the sockets watched so far are left open (they go back to their pool)."""
        self._timer.cancel()
        with self._lock:
            self._sockets.clear()

    def watch(self, sock: socket.socket) -> None:
        """Shut `sock` down when the deadline passes (at once if it already has)."""
        with self._lock:
            if not self.expired:
                self._sockets.append(sock)
                return
        _shutdown(sock)

    def _expire(self) -> None:
        with self._lock:
            self.expired = True
            sockets, self._sockets = self._sockets, []
        for sock in sockets:
            _shutdown(sock)


def _shutdown(sock: socket.socket) -> None:
    # socket.socket's own shutdown, also for an SSLSocket: SSLSocket.shutdown would drop its TLS
    # state under the feet of the thread still reading from it.
    with contextlib.suppress(OSError):
        socket.socket.shutdown(sock, socket.SHUT_RDWR)


def _watch_current(sock: socket.socket | None) -> None:
    deadline: CallDeadline | None = getattr(_current, "deadline", None)
    if deadline is not None and sock is not None:
        deadline.watch(sock)


def watched_pool(pool: type[HTTPConnectionPool], watch: Callable[[socket.socket | None], None]) -> type:
    """`pool` whose connections hand their socket to `watch`: new ones on connect, pooled ones when a
    request starts on them (`sock` is None then when not connected yet: `connect` hands it over)."""
    base: type[HTTPConnection] = pool.ConnectionCls

    class Watched(base):  # type: ignore[misc, valid-type]
        def connect(self) -> None:
            super().connect()
            watch(self.sock)

        def request(self, *args: Any, **kwargs: Any) -> None:
            watch(self.sock)
            super().request(*args, **kwargs)

    Watched.__name__ = f"Watched{base.__name__}"
    return type(f"Watched{pool.__name__}", (pool,), {"ConnectionCls": Watched})


class DeadlineAdapter(HTTPAdapter):
    """requests' adapter whose connections obey the calling thread's `CallDeadline`."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = dict(_WATCHED_POOLS)

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> Any:
        manager = super().proxy_manager_for(proxy, **proxy_kwargs)
        if not proxy.lower().startswith("socks"):  # SOCKS pools are urllib3's own: not watched
            manager.pool_classes_by_scheme = dict(_WATCHED_POOLS)
        return manager


# Connections obey the calling thread's deadline.
_WATCHED_POOLS = {
    "http": watched_pool(HTTPConnectionPool, _watch_current),
    "https": watched_pool(HTTPSConnectionPool, _watch_current),
}
