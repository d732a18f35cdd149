"""The upload API handler served over real HTTP on loopback, as API Gateway would call it (no Docker).

Each HTTP request becomes an API Gateway REST (v1) proxy event of the real shape; the handler's
proxy response becomes the HTTP response.

Example::

    with LocalApiServer() as api:
        requests.get(f"{api.url}/jobs/ab12")
"""

from __future__ import annotations

import base64
import re
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from .handlers import load_handler_module
from .lambda_context import LocalLambdaContext

STAGE = "v1"
API_TIMEOUT_SECONDS = 29.0
# The resources declared in template.yaml: API Gateway puts the matched one in `resource`.
RESOURCES = [
    "/upload/images/{net_id}",
    "/jobs/{job_id}",
    "/jobs",
    "/nets/{net_id}/jobs/{job_id}",
    "/nets/{net_id}/jobs",
    "/openapi.json",
]


def _matcher(resource: str) -> re.Pattern[str]:
    return re.compile("^" + re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^/]+)", re.escape(resource)) + "$")


_ROUTES = [(resource, _matcher(resource)) for resource in RESOURCES]


def proxy_event(
    method: str, raw_path: str, headers: dict[str, str], body: bytes | None, source_ip: str
) -> dict[str, Any]:
    """An API Gateway REST proxy event for one request (what `sam local generate-event apigateway aws-proxy` shows)."""
    split = urlsplit(raw_path)
    path = unquote(split.path) or "/"
    if path.startswith(f"/{STAGE}/"):
        path = path[len(STAGE) + 1 :]
    resource, path_parameters = path, None
    for candidate, pattern in _ROUTES:
        match = pattern.match(path)
        if match:
            resource, path_parameters = candidate, match.groupdict() or None
            break
    query = parse_qs(split.query, keep_blank_values=True)
    text_body: str | None = None
    is_base64 = False
    if body:
        try:
            text_body = body.decode()
        except UnicodeDecodeError:
            text_body, is_base64 = base64.b64encode(body).decode(), True
    return {
        "resource": resource,
        "path": path,
        "httpMethod": method,
        "headers": dict(headers),
        "multiValueHeaders": {k: [v] for k, v in headers.items()},
        "queryStringParameters": {k: v[-1] for k, v in query.items()} or None,
        "multiValueQueryStringParameters": query or None,
        "pathParameters": path_parameters,
        "stageVariables": None,
        "requestContext": {
            "resourcePath": resource,
            "httpMethod": method,
            "path": f"/{STAGE}{path}",
            "stage": STAGE,
            "requestId": str(uuid.uuid4()),
            "accountId": "123456789012",
            "apiId": "local",
            "protocol": "HTTP/1.1",
            "requestTimeEpoch": int(time.time() * 1000),
            "identity": {"sourceIp": source_ip, "userAgent": headers.get("User-Agent", "")},
        },
        "body": text_body,
        "isBase64Encoded": is_base64,
    }


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        return

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None
        event = proxy_event(self.command, self.path, dict(self.headers.items()), body, self.client_address[0])
        response = self.server.app.lambda_handler(event, LocalLambdaContext("upload-api", API_TIMEOUT_SECONDS))
        payload = response.get("body") or ""
        data = base64.b64decode(payload) if response.get("isBase64Encoded") else payload.encode()
        self.send_response(int(response.get("statusCode", 502)))
        headers = {k: v for k, v in (response.get("headers") or {}).items()}
        for name, values in (response.get("multiValueHeaders") or {}).items():
            headers.setdefault(name, ", ".join(values))
        for name, value in headers.items():
            if name.lower() not in ("content-length", "connection"):
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def __getattr__(self, name: str) -> Any:
        """Every method reaches the handler, which answers 405 for a method its route does not have
        (http.server itself would answer 501 for any method without a `do_` function)."""
        if name.startswith("do_"):
            return self._serve
        raise AttributeError(name)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    app: Any


class LocalApiServer:
    """Serves `functions/upload_api/app.py:lambda_handler`; the environment configures the handler."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self._server = _Server((host, port), _Handler)
        self._server.app = load_handler_module("upload_api")
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> LocalApiServer:
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True, name="local-api")
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        if self._thread:
            self._thread.join()

    def __enter__(self) -> LocalApiServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


__all__ = ["LocalApiServer", "proxy_event"]
