"""Local HTTP server: each request becomes an API Gateway proxy event for ``app.handler``.

Concurrency is modelled on Lambda, not on threads: Chalice keeps the request
in ``app.current_request`` (shared, not thread-safe), and Lambda runs one
invocation per execution environment at a time.  So the parent opens one
listening socket and forks N worker processes; each worker accepts and serves
one request at a time with its own app instance, pools and clients — like N
warm execution environments.  Each request is logged as one JSON line.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import socket
import sys
import time
import warnings
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

from chalicelib.local.events import LambdaContext, api_gateway_event

MAX_REQUEST_BYTES = 10 * 1024 * 1024  # API Gateway's payload limit


def _problem(status: int, title: str, detail: str, path: str) -> tuple[int, dict[str, str], bytes]:
    slug = title.lower().replace(" ", "-")
    body = json.dumps(
        {
            "type": f"/problems/{slug}",
            "title": title,
            "status": status,
            "detail": detail,
            "instance": path,
        }
    ).encode()
    return status, {"Content-Type": "application/problem+json"}, body


class _Handler(BaseHTTPRequestHandler):
    server_version = "docs-local"
    protocol_version = "HTTP/1.1"
    app_module: Any = None
    resources: tuple[str, ...] = ()

    def log_message(self, format: str, *args: Any) -> None:
        return  # we log our own JSON line per request

    def _serve(self) -> None:
        started = time.perf_counter()
        length = int(self.headers.get("Content-Length") or 0)
        headers = dict(self.headers.items())
        if length > MAX_REQUEST_BYTES:
            status, out_headers, body = _problem(
                413, "Payload too large", "Requests are limited to 10 MiB.", self.path
            )
            self.close_connection = True
        else:
            raw = self.rfile.read(length) if length else None
            event = api_gateway_event(
                self.resources, self.command, self.path, headers=headers, body=raw
            )
            if event is None:
                status, out_headers, body = _problem(
                    404, "Not found", f"No route for {self.path.split('?')[0]}.", self.path
                )
            else:
                status, out_headers, body = self._invoke(event)
        self.send_response(status)
        for name, value in out_headers.items():
            if name.lower() not in ("content-length", "connection", "transfer-encoding"):
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        # One request per connection: an idle keep-alive client must not hold
        # a worker (an "execution environment") hostage.
        self.send_header("Connection", "close")
        self.close_connection = True
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
        sys.stdout.write(
            json.dumps(
                {
                    "ts": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                    "level": "INFO",
                    "msg": "request",
                    "method": self.command,
                    "path": self.path,
                    "status": status,
                    "ms": round((time.perf_counter() - started) * 1000, 2),
                    "request_id": out_headers.get("X-Request-Id"),
                    "worker": os.getpid(),
                }
            )
            + "\n"
        )
        sys.stdout.flush()

    def _invoke(self, event: dict[str, Any]) -> tuple[int, dict[str, str], bytes]:
        result = self.app_module.handler(event, LambdaContext.new())
        headers = dict(result.get("headers") or {})
        for name, values in (result.get("multiValueHeaders") or {}).items():
            headers[name] = ", ".join(values)
        raw = result.get("body") or ""
        if result.get("isBase64Encoded"):
            import base64

            body = base64.b64decode(raw)
        else:
            body = raw.encode() if isinstance(raw, str) else bytes(raw)
        return int(result["statusCode"]), headers, body

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _serve
    do_TRACE = do_CONNECT = _serve  # the app answers 405 problem+json, as behind API Gateway

    def __getattr__(self, name: str) -> Any:
        # any other method token (QUERY, PROPFIND, ...) also reaches the app, which
        # answers 405 with Allow, instead of http.server's 501
        if name.startswith("do_"):
            return self._serve
        raise AttributeError(name)

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """The http.server's own errors (unknown method, malformed request line,
        header too long) in the API's problem+json shape, not its HTML page."""
        title = {400: "Bad request", 405: "Method not allowed", 414: "URI too long",
                 431: "Request header fields too large", 501: "Not implemented"}.get(
            code, "Error")  # fmt: skip
        status, headers, body = _problem(
            code, title, message or explain or title, getattr(self, "path", "") or ""
        )
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        self.close_connection = True
        self.end_headers()
        if getattr(self, "command", None) != "HEAD":
            self.wfile.write(body)


def _worker(sock: socket.socket) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent coordinates shutdown
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    warnings.filterwarnings("ignore", message="No application metrics to publish")
    import app as app_module  # imported in the worker: one app per "execution environment"

    _Handler.app_module = app_module
    _Handler.resources = tuple(app_module.app.routes)
    server = HTTPServer(sock.getsockname(), _Handler, bind_and_activate=False)
    server.socket = sock
    server.serve_forever(poll_interval=0.5)


def serve(host: str, port: int, workers: int) -> None:
    """Serve until SIGINT/SIGTERM; returns after the workers have stopped."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(128)
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_worker, args=(sock,), daemon=True) for _ in range(workers)]
    for proc in procs:
        proc.start()
    stopping = False

    def stop(*_: Any) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    print(
        json.dumps(
            {"level": "INFO", "msg": "serving", "url": f"http://{host}:{port}", "workers": workers}
        ),
        flush=True,
    )
    try:
        while not stopping:
            for i, proc in enumerate(procs):
                if not proc.is_alive():  # a crashed environment is replaced, as Lambda would
                    procs[i] = ctx.Process(target=_worker, args=(sock,), daemon=True)
                    procs[i].start()
            time.sleep(0.2)
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.join(timeout=5)
        sock.close()
