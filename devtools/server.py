"""Local HTTP server: each request becomes an API Gateway proxy event for ``app.handler``.

Concurrency is modelled on Lambda, not on threads: Chalice keeps the request
in ``app.current_request`` (shared, not thread-safe), and Lambda runs one
invocation per execution environment at a time.  So the parent opens one
listening socket and forks N worker processes; each worker accepts and serves
one request at a time with its own app instance, pools and clients — like N
warm execution environments.  Each request is logged as one JSON line, with
any credential in it redacted (``chalicelib.redaction``).

Connections are HTTP/1.1 persistent (keep-alive, pipelining) unless the
client says ``Connection: close`` (or speaks HTTP/1.0 without keep-alive).
Each request is read against a total deadline for the request line and
headers and another for the body; between requests a connection may stay idle
for ``idle_timeout_s`` and carry at most ``max_requests`` requests (``Limits``,
from ``DOCS_LOCAL_*``), so neither a slow nor an idle client holds a worker
longer than that.  Where a request ends is decided once, by h11
(``devtools/http_framing.py``): a malformed or ambiguous head is a 400 (an
unknown transfer coding a 501), and a chunked body is decoded.  After an early
error (400, 408, 413, 414, 431, 501, 505) the connection is closed: what
follows on it cannot be trusted to be a request.
A client that goes away mid-response costs one log line, never a traceback.
Requests over API Gateway's sizes (10240 bytes of request line and headers,
10 MiB of body) and malformed ones get the same problem+json, security
headers and ``X-Request-Id`` as the app's own answers.
"""

from __future__ import annotations

import base64
import dataclasses
import errno
import io
import json
import multiprocessing
import os
import re
import signal
import socket
import sys
import time
import uuid
import warnings
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any
from urllib.parse import urlsplit

from chalicelib.api.http import SECURITY_HEADERS, STATUS_PROBLEMS, pick_request_id, problem
from chalicelib.redaction import redact
from devtools import realtime_hub
from devtools.events import api_gateway_event, invoke
from devtools.http_framing import Message, Refused, parse_head

MAX_REQUEST_BYTES = 10 * 1024 * 1024  # API Gateway's payload limit
# API Gateway (REST): "total combined size of request line and header values" is 10240 bytes
MAX_HEADER_BYTES = 10240
LINGER_S = 2.0  # after an early error, drop what the client still sends for at most this long
_END_OF_HEAD = re.compile(rb"\r?\n\r?\n")
_HOP_BY_HOP = ("content-length", "connection", "transfer-encoding", "keep-alive")
_DIGITS = re.compile(r"[0-9]+")


@dataclasses.dataclass(frozen=True)
class Limits:
    """What one connection may cost a worker; from ``DOCS_LOCAL_*`` (README, local server)."""

    header_timeout_s: float = 10.0  # request line + headers, in total (not per read)
    body_timeout_s: float = 30.0  # the whole body, in total; also bounds writing the response
    max_header_bytes: int = MAX_HEADER_BYTES
    max_body_bytes: int = MAX_REQUEST_BYTES
    idle_timeout_s: float = 5.0  # a keep-alive connection's wait for its next request
    max_requests: int = 100  # requests on one connection, then it is closed

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> Limits:
        env = dict(os.environ if env is None else env)
        limits = cls(
            header_timeout_s=float(env.get("DOCS_LOCAL_HEADER_TIMEOUT_S", cls.header_timeout_s)),
            body_timeout_s=float(env.get("DOCS_LOCAL_BODY_TIMEOUT_S", cls.body_timeout_s)),
            max_header_bytes=int(env.get("DOCS_LOCAL_MAX_HEADER_BYTES", cls.max_header_bytes)),
            idle_timeout_s=float(env.get("DOCS_LOCAL_IDLE_TIMEOUT_S", cls.idle_timeout_s)),
            max_requests=int(env.get("DOCS_LOCAL_MAX_REQUESTS", cls.max_requests)),
        )
        values = dataclasses.astuple(limits)
        if min(values) <= 0:
            raise ValueError(f"local server limits must be positive: {limits}")
        return limits


def _write_line(line: str) -> None:
    """One log line on stdout; when stdout is a pipe whose reader went away, the
    line is lost, not the request (and no traceback follows)."""
    try:
        sys.stdout.write(line)
        sys.stdout.flush()
    except (OSError, ValueError):
        pass


class _Server(HTTPServer):
    handed_over: set[socket.socket]

    def shutdown_request(self, request: Any) -> None:
        """A connection handed over to the real-time process stays open: only this
        process's descriptor is closed (a shutdown would end it for both)."""
        if request in getattr(self, "handed_over", ()):
            self.handed_over.discard(request)
            self.close_request(request)
            return
        super().shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that went away outside ``handle`` is a log line, not a traceback."""
        exc = sys.exc_info()[1]
        if not isinstance(exc, (ConnectionError, TimeoutError)):
            super().handle_error(request, client_address)
            return
        line = {"level": "WARNING", "msg": "connection dropped", "error": type(exc).__name__}
        _write_line(json.dumps(line) + "\n")


class _Early(Exception):
    """The request cannot be served: answer ``status`` (None: just close) and stop."""

    def __init__(self, status: int | None, detail: str = "") -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


def _local_problem(
    status: int, detail: str, instance: str | None, rid: str
) -> tuple[int, dict[str, str], bytes]:
    """The local server's own answers, with every header the app's responses carry."""
    slug, title = STATUS_PROBLEMS.get(status, ("error", "Error"))
    response = problem(
        status,
        slug,
        title,
        detail,
        instance=instance,
        headers={**SECURITY_HEADERS, "X-Request-Id": rid},
    )
    headers = {name: str(value) for name, value in response.headers.items()}
    return status, headers, str(response.body).encode()


class _Handler(BaseHTTPRequestHandler):
    """Requests on a persistent connection, each read with a total deadline for the
    head and one for the body, with an idle timeout between them, so a slow,
    stalled or idle client holds a worker no longer than the timeouts."""

    server_version = "docs-local"
    protocol_version = "HTTP/1.1"
    # TCP_NODELAY: the head and the body are separate writes; with Nagle on, the
    # body waits for the client's delayed ACK of the head (~40 ms a response).
    disable_nagle_algorithm = True
    app_module: Any = None
    resources: tuple[str, ...] = ()
    limits = Limits()
    realtime_socket: str | None = None  # the real-time process's hand-over socket

    def log_message(self, format: str, *args: Any) -> None:
        return  # we log our own JSON line per request

    # ------------------------------------------------------------------ reading
    def _recv(self, deadline: float, status: int | None) -> bool:
        """Read more into the buffer before ``deadline`` (else ``_Early(status)``);
        False at end of stream."""
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise _Early(status, "The request was not received in time.")
        self.connection.settimeout(remaining)
        try:
            chunk = self.connection.recv(65536)
        except TimeoutError:
            raise _Early(status, "The request was not received in time.") from None
        self._buf += chunk
        return bool(chunk)

    def _read_head(self) -> bytes | None:
        """Request line and header fields, within the header timeout and size limit."""
        limit = self.limits.max_header_bytes
        deadline = time.monotonic() + self.limits.header_timeout_s
        while True:
            # RFC 9112 2.2: empty lines before the request line are ignored
            while self._buf[:1] in (bytearray(b"\r"), bytearray(b"\n")):
                del self._buf[:1]
            line_end = self._buf.find(b"\n")
            if line_end > limit or (line_end < 0 and len(self._buf) > limit):
                raise _Early(414, f"The request line is over {limit} bytes.")
            end = _END_OF_HEAD.search(self._buf, max(line_end - 1, 0)) if line_end >= 0 else None
            if end is not None and end.end() <= limit:
                head = bytes(self._buf[: end.end()])
                del self._buf[: end.end()]
                return head
            if len(self._buf) > limit:
                raise _Early(431, f"The request line and header fields are over {limit} bytes.")
            # a stalled client gets 408 once it has sent something, an idle one is dropped
            if not self._recv(deadline, 408 if self._buf else None):
                if self._buf:
                    raise _Early(400, "The connection ended inside the request head.")
                return None

    def _content_length(self) -> int:
        values = [
            part.strip()
            for v in self.headers.get_all("Content-Length") or []
            for part in v.split(",")
        ]
        if not values:
            return 0
        if not all(_DIGITS.fullmatch(v) for v in values):
            raise _Early(400, "Content-Length must be a non-negative decimal integer.")
        distinct = {v.lstrip("0") or "0" for v in values}
        if len(distinct) > 1:
            raise _Early(400, "The request has conflicting Content-Length values.")
        value = distinct.pop()
        # (int() refuses over 4300 digits; anything past 18 is over every limit anyway)
        return int(value) if len(value) <= 18 else sys.maxsize

    def _frame(self, head: bytes) -> Message:
        """The request's framing, decided once by h11 (``devtools/http_framing.py``);
        a declared length over the limit is a 413 before any of the body is read."""
        if self._content_length() > self.limits.max_body_bytes:
            raise _Early(413, f"Requests are limited to {self.limits.max_body_bytes // 2**20} MiB.")
        try:
            return parse_head(head, self.limits.max_header_bytes)
        except Refused as exc:
            raise _Early(exc.status, exc.detail) from None

    def _read_body(self, message: Message) -> bytes:
        """The body as its framing says (Content-Length or chunked), within the body
        timeout and size limit; what follows it stays buffered for the next request."""
        deadline = time.monotonic() + self.limits.body_timeout_s
        body = bytearray()
        while True:
            try:
                data, done = message.read(bytes(self._buf))
            except Refused as exc:
                raise _Early(exc.status, exc.detail) from None
            self._buf.clear()
            body += data
            if len(body) > self.limits.max_body_bytes:
                limit = self.limits.max_body_bytes // 2**20
                raise _Early(413, f"Requests are limited to {limit} MiB.")
            if done:
                self._buf += message.rest()
                return bytes(body)
            if not self._recv(deadline, 408):
                raise _Early(400, "The connection ended inside the request body.")

    # ------------------------------------------------------------------ serving
    def handle(self) -> None:
        self._buf = bytearray()  # bytes read past the current request (pipelining)
        self._served = 0
        self.close_connection = False
        try:
            while True:
                self.handle_one_request()
                if self.close_connection or not self._next_request_arrives():
                    break
        except (ConnectionError, TimeoutError) as exc:  # the client went away or stopped reading
            self._log(None, error=type(exc).__name__)

    def _next_request_arrives(self) -> bool:
        """Wait up to the idle timeout for the next request's first bytes; False
        (close quietly) when the client closes or stays idle."""
        if self._buf:
            return True
        self.connection.settimeout(self.limits.idle_timeout_s)
        try:
            chunk = self.connection.recv(65536)
        except (TimeoutError, ConnectionError):
            return False
        self._buf += chunk
        return bool(chunk)

    def handle_one_request(self) -> None:
        self._started = time.perf_counter()
        self.close_connection = True  # until a complete request says otherwise
        self._rid = ""
        self.command, self.path, self.request_version, self.requestline = "", "", "HTTP/1.1", ""
        try:
            head = self._read_head()
            if head is None:
                return  # connected and closed (or stayed idle) without a request
            self._head = head
            line, _, fields = head.partition(b"\n")
            self.raw_requestline = line + b"\n"
            sock_rfile, self.rfile = self.rfile, io.BytesIO(fields)
            try:
                parsed = self.parse_request()  # errors: send_error below
            finally:
                self.rfile = sock_rfile
            if not parsed:
                return
            if self.request_version == "HTTP/0.9":
                self.request_version = "HTTP/1.1"
                raise _Early(400, "HTTP/0.9 requests are not supported.")
            self._rid = pick_request_id(self.headers.get("X-Request-Id"))
            self._message = self._frame(head)
            getattr(self, "do_" + self.command)()
        except _Early as early:
            self.close_connection = True
            if early.status is None:
                return
            self._rid = self._rid or str(uuid.uuid4())
            status, headers, body = _local_problem(
                early.status, early.detail, self._instance(), self._rid
            )
            self._respond(status, headers, body, keep_alive=False)
            if early.status != 408:  # a client that timed out gets no more of our time
                self._linger()

    def handle_expect_100(self) -> bool:
        return True  # sent by _serve once the length is known to be acceptable

    def _instance(self) -> str | None:
        return (urlsplit(self.path).path or None) if self.path else None

    def _serve(self) -> None:
        message = self._message
        if self.realtime_socket and realtime_hub.wants(self.command, self.path):
            if message.chunked or message.length:  # its bytes would reach the stream
                raise _Early(400, "A stream request carries no body.")
            self._hand_over(self.realtime_socket)
            return
        expect = self.headers.get("Expect", "").lower() == "100-continue"
        waiting = message.chunked or message.length > len(self._buf)
        if expect and waiting and self.request_version >= "HTTP/1.1":
            self.wfile.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        raw = self._read_body(message) if message.chunked or message.length else None
        headers = dict(self.headers.items())
        if message.chunked:  # the app sees the decoded body, as behind API Gateway
            headers = {k: v for k, v in headers.items() if k.lower() != "transfer-encoding"}
            headers["Content-Length"] = str(len(raw or b""))
        event = api_gateway_event(
            self.resources, self.command, self.path, headers=headers, body=raw or None
        )
        if event is None:
            result = _local_problem(
                404, f"No route for {self._instance()}.", self._instance(), self._rid
            )
        else:
            result = self._invoke(event)
        self._respond(*result, keep_alive=self._client_keeps_alive())

    def _hand_over(self, path: str) -> None:
        """A stream (WebSocket, server-sent events) goes to the real-time process
        (devtools/realtime_hub.py), with what was read of it; the worker moves on."""
        try:
            realtime_hub.hand_over(path, self.connection, self._head + bytes(self._buf))
        except OSError as exc:
            self._log(None, error=f"hand-over failed: {exc}")
            raise _Early(503, "The real-time endpoint is not running; retry shortly.") from None
        self._buf.clear()
        self.server.handed_over = getattr(self.server, "handed_over", set())  # type: ignore[attr-defined]
        self.server.handed_over.add(self.connection)  # type: ignore[attr-defined]
        self.close_connection = True
        self._log(101, handed_over="realtime")

    def _client_keeps_alive(self) -> bool:
        """HTTP/1.1 unless ``Connection: close``; HTTP/1.0 only with ``keep-alive``;
        never with a Transfer-Encoding (its body was not read) or past max_requests."""
        tokens = {
            t.strip().lower()
            for v in self.headers.get_all("Connection") or []
            for t in v.split(",")
        }
        if "close" in tokens or self.headers.get("Transfer-Encoding") is not None:
            return False
        if self._served + 1 >= self.limits.max_requests:
            return False
        return self.request_version == "HTTP/1.1" or "keep-alive" in tokens

    def _respond(
        self, status: int, headers: dict[str, str], body: bytes, *, keep_alive: bool
    ) -> None:
        self.connection.settimeout(self.limits.body_timeout_s)  # a client that never reads
        self.send_response(status)
        for name, value in headers.items():
            if name.lower() not in _HOP_BY_HOP:
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self._served += 1
        self.close_connection = not keep_alive
        if keep_alive:
            if self.request_version != "HTTP/1.1":
                self.send_header("Connection", "keep-alive")
            idle = self.limits.idle_timeout_s
            left = self.limits.max_requests - self._served
            self.send_header("Keep-Alive", f"timeout={idle:g}, max={left}")
        else:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
        self._log(status, request_id=headers.get("X-Request-Id"))

    def _linger(self) -> None:
        """After answering early, drop what the client is still sending for a moment
        before closing: closing with unread input resets the connection, and the
        client could lose the answer."""
        try:
            self.connection.shutdown(socket.SHUT_WR)
            deadline = time.monotonic() + LINGER_S
            while (remaining := deadline - time.monotonic()) > 0:
                self.connection.settimeout(remaining)
                if not self.connection.recv(65536):
                    break
        except OSError:
            pass

    def _log(self, status: int | None, **extra: Any) -> None:
        """One JSON line per request; a credential in its URL (``?token=``) is redacted."""
        _write_line(
            json.dumps(
                redact(
                    {
                        "ts": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                        "level": "INFO" if status is not None else "WARNING",
                        "msg": "request" if status is not None else "connection dropped",
                        "method": self.command,
                        "path": self.path,
                        "status": status,
                        "ms": round((time.perf_counter() - self._started) * 1000, 2),
                        "worker": os.getpid(),
                        **extra,
                    }
                )
            )
            + "\n"
        )

    def _invoke(self, event: dict[str, Any]) -> tuple[int, dict[str, str], bytes]:
        result = invoke(self.app_module.handler, event, "docs-api")
        headers = dict(result.get("headers") or {})
        for name, values in (result.get("multiValueHeaders") or {}).items():
            headers[name] = ", ".join(values)
        raw = result.get("body") or ""
        if result.get("isBase64Encoded"):
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
        """The http.server's own errors (malformed request line, bad version, too many
        headers) in the API's problem+json shape with the full header set."""
        self.request_version = "HTTP/1.1"  # never a bare HTTP/0.9 answer without headers
        raise _Early(code, message or explain or STATUS_PROBLEMS.get(code, ("", "Error"))[1])


def _worker(sock: socket.socket, limits: Limits) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent coordinates shutdown
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    warnings.filterwarnings("ignore", message="No application metrics to publish")
    import app as app_module  # imported in the worker: one app per "execution environment"

    _Handler.app_module = app_module
    _Handler.resources = tuple(app_module.app.routes)
    _Handler.limits = limits
    _Handler.realtime_socket = os.environ.get(realtime_hub.ENV_SOCKET) or None
    server = _Server(sock.getsockname(), _Handler, bind_and_activate=False)
    server.socket = sock
    server.serve_forever(poll_interval=0.5)


class PortUnavailable(SystemExit):
    """The port cannot be listened on: stop with one sentence, not a traceback."""


def listen(host: str, port: int) -> socket.socket:
    """The listening socket, bound before anything else starts (PortUnavailable if not)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
        sock.listen(128)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            reason = f"port {port} on {host} is already in use (another server?)"
        else:
            reason = f"cannot listen on {host}:{port}: {exc.strerror or exc}"
        raise PortUnavailable(f"{reason}; stop it, or pick another port with --port N") from None
    return sock


def serve(
    host: str,
    port: int,
    workers: int,
    limits: Limits | None = None,
    *,
    sock: socket.socket | None = None,
    on_ready: Callable[[], None] | None = None,
) -> None:
    """Serve until SIGINT/SIGTERM; returns after the workers have stopped.
    ``sock``: already listening (``listen``); ``on_ready``: called once the workers run."""
    limits = limits or Limits.from_env()
    sock = sock or listen(host, port)
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_worker, args=(sock, limits), daemon=True) for _ in range(workers)]
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
            {
                "level": "INFO",
                "msg": "serving",
                "url": f"http://{host}:{port}",
                "workers": workers,
                "limits": dataclasses.asdict(limits),
            }
        ),
        flush=True,
    )
    if on_ready is not None:
        on_ready()
    try:
        while not stopping:
            for i, proc in enumerate(procs):
                if not proc.is_alive():  # a crashed environment is replaced, as Lambda would
                    procs[i] = ctx.Process(target=_worker, args=(sock, limits), daemon=True)
                    procs[i].start()
            time.sleep(0.2)
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.join(timeout=5)
        sock.close()
