"""A loopback TCP proxy in front of moto's S3 that trickles the answers to chosen GETs."""

from __future__ import annotations

import contextlib
import socket
import threading
import time


class TrickleProxy:
    """Forwards bytes both ways; the answer to a request whose first line contains `match` (and
    starts with GET) is sent back `rate` bytes a second (every recv of the client makes progress)."""

    def __init__(self, upstream: str, match: str, rate: float, max_seconds: float = 30.0) -> None:
        host, port = upstream.removeprefix("http://").split(":")
        self.upstream = (host, int(port))
        self.match, self.rate, self.max_seconds = match.encode(), rate, max_seconds
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        self.trickled = 0
        self._stop = threading.Event()
        self._sockets: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            server = socket.create_connection(self.upstream)
            self._sockets += [client, server]
            state = {"slow": False}
            threading.Thread(target=self._up, args=(client, server, state), daemon=True).start()
            threading.Thread(target=self._down, args=(server, client, state), daemon=True).start()

    def _up(self, client: socket.socket, server: socket.socket, state: dict) -> None:
        with contextlib.suppress(OSError):
            while data := client.recv(65536):
                for verb in (b"GET ", b"HEAD ", b"PUT ", b"POST ", b"DELETE "):
                    if data.startswith(verb):
                        first = data.split(b"\r\n", 1)[0]
                        state["slow"] = verb == b"GET " and self.match in first
                        if state["slow"]:
                            self.trickled += 1
                server.sendall(data)
        with contextlib.suppress(OSError):
            server.shutdown(socket.SHUT_WR)

    def _down(self, server: socket.socket, client: socket.socket, state: dict) -> None:
        with contextlib.suppress(OSError):
            started = None
            while data := server.recv(65536):
                if state["slow"] and started is None:
                    started = time.monotonic()
                if not state["slow"] or time.monotonic() - started > self.max_seconds:
                    client.sendall(data)
                    continue
                for i in range(len(data)):
                    if self._stop.is_set():
                        return
                    if time.monotonic() - started > self.max_seconds:  # bounded, so the test ends
                        client.sendall(data[i:])
                        break
                    client.sendall(data[i : i + 1])
                    time.sleep(1 / self.rate)
        with contextlib.suppress(OSError):
            client.shutdown(socket.SHUT_WR)

    def close(self) -> None:
        self._stop.set()
        self.listener.close()
        for sock in self._sockets:
            with contextlib.suppress(OSError):
                sock.close()
