"""The HTTP side of the local real-time process: which requests the HTTP workers
hand over to it (WebSocket, event stream), how a connection travels there (its
socket and the bytes already read, over a Unix socket), and the HTTP answers the
process writes on such a connection itself."""

from __future__ import annotations

import http.client
import socket
import struct
from collections.abc import Callable
from urllib.parse import parse_qs, urlsplit

from chalicelib.api.http import SECURITY_HEADERS, problem_from_error
from chalicelib.api.problems import problem_of
from chalicelib.domain.errors import DomainError

ENV_SOCKET = "DOCS_LOCAL_REALTIME_SOCKET"  # where the process listens for hand-overs
_MAX_HANDOVER = 1 << 17


def wants(method: str, path: str) -> bool:
    """Whether a request belongs to the hub (a worker hands it over)."""
    if method != "GET":
        return False
    parts = urlsplit(path)
    if parts.path == "/realtime":
        return True
    return parts.path == "/changes" and parse_qs(parts.query).get("feed") == ["eventsource"]


def hand_over(path: str, conn: socket.socket, data: bytes) -> None:
    """Send the client socket and what was read of it to the hub (OSError if it is down)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as unix:
        unix.settimeout(2.0)
        unix.connect(path)
        payload = struct.pack("!I", len(data)) + data
        sent = socket.send_fds(unix, [payload[:4096]], [conn.fileno()])
        if sent < len(payload):  # (sending nothing to a hub that already closed: EPIPE)
            unix.sendall(payload[sent:])


def receive(unix: socket.socket, serve: Callable[[socket.socket, bytes], None]) -> None:
    """Accept hand-overs from the workers (in a thread of the real-time process) and
    ``serve`` each connection with what the worker had read of it."""
    while True:
        try:
            client, _ = unix.accept()
        except OSError:
            return
        with client:
            try:
                msg, fds, _flags, _addr = socket.recv_fds(client, _MAX_HANDOVER, 1)
                if not fds:
                    continue
                (length,) = struct.unpack("!I", msg[:4])
                data = msg[4:]
                while len(data) < length:
                    more = client.recv(length - len(data))
                    if not more:
                        break
                    data += more
            except OSError:
                continue
        serve(socket.socket(fileno=fds[0]), data)


def event_stream_head(rid: str, cors: dict[str, str] | None = None) -> bytes:
    headers = {**SECURITY_HEADERS, **(cors or {}),
               "Content-Type": "text/event-stream; charset=utf-8",
               "Cache-Control": "no-store", "X-Request-Id": rid, "Connection": "close",
               "X-Accel-Buffering": "no"}  # fmt: skip
    lines = ["HTTP/1.1 200 OK", *(f"{k}: {v}" for k, v in headers.items()), "", ""]
    return "\r\n".join(lines).encode()


def problem_answer(exc: DomainError, rid: str, cors: dict[str, str] | None = None) -> bytes:
    """The app's problem+json answer, with every header its answers carry."""
    response = problem_from_error(exc, "/changes")
    headers = {**SECURITY_HEADERS, **(cors or {}),
               **{k: str(v) for k, v in response.headers.items()},
               "Cache-Control": "no-store", "X-Request-Id": rid, "Connection": "close"}  # fmt: skip
    body = str(response.body).encode()
    headers["Content-Length"] = str(len(body))
    kind = problem_of(exc)
    reason = http.client.responses.get(kind.status, kind.title)
    lines = [f"HTTP/1.1 {kind.status} {reason}", *(f"{k}: {v}" for k, v in headers.items()), "", ""]
    return "\r\n".join(lines).encode() + body
