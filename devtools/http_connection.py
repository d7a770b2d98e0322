"""One client connection of the local server, as a non-blocking state machine.

A worker process (``devtools/server.py``) owns many of these and drives them
from one selector: a connection reads only when its socket is readable,
writes only when it is writable, and never blocks the worker on its client.
Its phases:

* ``IDLE``: waiting for a request's first byte (the first request within the
  header timeout of the accept, the next ones within the idle timeout); past
  it, closed without an answer.
* ``HEAD``: the request line and header fields are arriving; complete within
  the header timeout (else 408) and the size limit (else 414 or 431).  The
  complete head is framed once, by h11 (``devtools/http_framing.py``).
* ``BODY``: the body is arriving (Content-Length or chunked, decoded by the
  same h11 connection), within the body timeout (else 408) and 10 MiB.
* then the request is served at once: the API Gateway proxy event goes to
  ``app.handler`` in this process, synchronously, so a worker runs one
  request at a time (Chalice's ``app.current_request`` is per process, not per
  thread, and Lambda runs one invocation per environment at a time).
* the response is written as the socket takes it, within the body timeout;
  then the connection is ``IDLE`` again (keep-alive), closed, or, after an
  early error, ``LINGER``s: it drops what the client still sends for a moment
  before closing, so the client does not lose the answer to a reset.

Bytes that follow a request (pipelining) wait in the buffer until its
response has been written; requests on one connection are answered in order.
After an early error (400, 408, 413, 414, 431, 501, 505) the connection is
closed: what follows on it cannot be trusted to be a request.  A WebSocket or
event stream leaves for the real-time process (``devtools/realtime_http.py``).
"""

from __future__ import annotations

import base64
import enum
import re
import socket
import sys
import time
import traceback
import uuid
from http import HTTPStatus
from typing import Any
from urllib.parse import urlsplit

from chalicelib.api.http import pick_request_id
from devtools import browser_http, realtime_http
from devtools.events import api_gateway_event, invoke
from devtools.http_framing import (
    Fields,
    Message,
    Refused,
    declared_length,
    http_date,
    parse_head,
    request_line,
)
from devtools.local_http import Limits, local_problem, log_request

_REASONS = {status.value: status.phrase for status in HTTPStatus}
_NO_FIELDS = Fields([])
LINGER_S = 2.0  # after an early error, drop what the client still sends for at most this long
RECV_BYTES = 65536
_END_OF_HEAD = re.compile(rb"\r?\n\r?\n")
_HOP_BY_HOP = ("content-length", "connection", "transfer-encoding", "keep-alive")


class Phase(enum.Enum):
    IDLE = "idle"
    HEAD = "head"
    BODY = "body"
    LINGER = "linger"
    DONE = "done"


class _Then(enum.Enum):
    """What follows once the pending output has been written."""

    READ = "read"  # go on reading (after 100 Continue)
    NEXT = "next"  # keep-alive: wait for the next request
    CLOSE = "close"
    LINGER = "linger"


class _Early(Exception):
    """The request cannot be served: answer ``status`` (None: just close) and stop."""

    def __init__(self, status: int | None, detail: str = "") -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


class Connection:
    """One accepted client socket and the request on it.  The head is read with
    http.server's rules and answers and framed by h11 (``devtools/http_framing.py``);
    the answer is written as http.server would write it."""

    protocol_version = "HTTP/1.1"
    server_header = f"docs-local Python/{sys.version.split()[0]}"  # http.server's Server
    app_module: Any = None
    resources: tuple[str, ...] = ()
    limits = Limits()
    realtime_socket: str | None = None  # the real-time process's hand-over socket
    cors_origins: tuple[str, ...] = ()
    _NO_BROWSER: tuple[str | None, str | None] = (None, None)  # Origin, Accept-Encoding

    def __init__(self, sock: socket.socket, address: Any, now: float) -> None:
        self.connection = sock
        self.client_address = address
        # the head and the body go out in one send, but a 100 Continue and then the
        # answer are two: with Nagle on, the second waits for the client's delayed ACK
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.setblocking(False)
        self._out = bytearray()  # written, not yet taken by the socket
        self._buf = bytearray()  # read, not yet part of a request (or the next one's)
        self._served = 0
        self._then = _Then.READ
        self._handed_over = False
        self.phase = Phase.IDLE
        self.deadline = now + self.limits.header_timeout_s  # the first request's head
        self._write_deadline = 0.0
        self._new_request()

    # ------------------------------------------------------------ the worker's calls
    @property
    def done(self) -> bool:
        """Finished: the worker unregisters the socket and ``release``s it."""
        return self.phase is Phase.DONE

    def wants_write(self) -> bool:
        return bool(self._out)

    def due(self) -> float:
        """When this connection must be acted on if nothing arrives."""
        return self._write_deadline if self._out else self.deadline

    def readable(self, now: float) -> bool:
        """Read what arrived and go as far as it allows (at most one request
        served); True when more buffered bytes may hold another request."""
        try:
            chunk = self.connection.recv(RECV_BYTES)
        except (BlockingIOError, InterruptedError):
            return False
        except (ConnectionError, TimeoutError) as exc:
            self._dropped(exc)
            return False
        if self.phase is Phase.LINGER:
            if not chunk:
                self.phase = Phase.DONE
            return False
        if not chunk:
            return self._guard(self._ended)
        self._buf += chunk
        if self.phase is Phase.IDLE:
            self._begin(now)
        return self.advance(now)

    def writable(self, now: float) -> bool:
        """Write what the socket takes; True when buffered bytes may hold a request."""
        try:
            sent = self.connection.send(self._out)
        except (BlockingIOError, InterruptedError):
            return False
        except (ConnectionError, TimeoutError) as exc:
            self._dropped(exc)
            return False
        del self._out[:sent]
        if self._out:
            return False
        then, self._then = self._then, _Then.READ
        if then is _Then.NEXT:
            self.phase, self.deadline = Phase.IDLE, now + self.limits.idle_timeout_s
            if self._buf:  # pipelined: the next request has begun
                self._begin(now)
                return True
        elif then is _Then.CLOSE:
            self.phase = Phase.DONE
        elif then is _Then.LINGER:
            self._linger(now)
        return False

    def expire(self, now: float) -> None:
        """The deadline passed: a stalled request is a 408, anything else is closed."""
        if self._out:
            self._dropped(TimeoutError())  # a client that does not read its answer
        elif self.phase is Phase.BODY or (self.phase is Phase.HEAD and self._buf.lstrip(b"\r\n")):
            self._guard(lambda: self._early(_Early(408, "The request was not received in time.")))
        else:  # idle, or only empty lines, or lingering
            self.phase = Phase.DONE

    def advance(self, now: float) -> bool:
        """Go as far as the buffered bytes allow, serving at most one request."""
        return self._guard(lambda: self._advance(now))

    def release(self) -> None:
        """Close this process's descriptor (the worker has unregistered it)."""
        try:
            if not self._handed_over:  # a shutdown would end a handed-over stream too
                self.connection.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        self.connection.close()

    # ------------------------------------------------------------ reading
    def _guard(self, step: Any) -> bool:
        """Run a step; an early error is answered, a vanished client logged."""
        try:
            return bool(step())
        except _Early as early:
            self._early(early)
        except (ConnectionError, TimeoutError) as exc:
            self._dropped(exc)
        except Exception:  # a bug: this connection ends, the worker goes on
            traceback.print_exc()
            self.phase = Phase.DONE
        return False

    def _begin(self, now: float) -> None:
        """A request's first bytes arrived: its head has the header timeout (the
        first request's counts from the accept)."""
        if self._served:
            self.deadline = now + self.limits.header_timeout_s
        self.phase = Phase.HEAD
        self._started = time.perf_counter()

    def _ended(self) -> bool:
        """The client closed its side: quietly if between requests, else a 400."""
        if self.phase is Phase.HEAD and self._buf.lstrip(b"\r\n"):
            raise _Early(400, "The connection ended inside the request head.")
        if self.phase is Phase.BODY:
            raise _Early(400, "The connection ended inside the request body.")
        if not self._out:
            self.phase = Phase.DONE
        return False

    def _advance(self, now: float) -> bool:
        if self._out or self.phase not in (Phase.HEAD, Phase.BODY):
            return False  # an answer is still being written: the next request waits
        if self.phase is Phase.HEAD:
            head = self._take_head()
            if head is None:
                return False
            if not self._start(head, now):
                return False  # handed over
        if self.phase is Phase.BODY and not self._read_body():
            return False
        self._finish()
        return bool(self._buf) and not self.done

    def _take_head(self) -> bytes | None:
        """Request line and header fields, when complete and within the size limit."""
        limit = self.limits.max_header_bytes
        # RFC 9112 2.2: empty lines before the request line are ignored
        while self._buf.startswith((b"\r", b"\n")):
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
        return None

    def _start(self, head: bytes, now: float) -> bool:
        """Parse and frame a complete head; False when the connection was handed over."""
        self._head = head
        line, _, fields = head.partition(b"\n")
        try:  # read as http.server would, once (h11 frames it below)
            self.command, self.path, self.request_version = request_line(line)
            self.headers = Fields.parse(fields)
        except Refused as exc:
            self.request_version = "HTTP/1.1"  # never a bare HTTP/0.9 answer without headers
            raise _Early(exc.status, exc.detail) from None
        if self.request_version == "HTTP/0.9":
            self.request_version = "HTTP/1.1"
            raise _Early(400, "HTTP/0.9 requests are not supported.")
        self._rid = pick_request_id(self.headers.get("X-Request-Id"))
        self._browser = (self.headers.get("Origin"), self.headers.get("Accept-Encoding"))
        message = self._message = self._frame(head)
        has_body = message.chunked or message.length > 0
        if self.realtime_socket and realtime_http.wants(self.command, self.path):
            if has_body:  # its bytes would reach the stream
                raise _Early(400, "A stream request carries no body.")
            self._hand_over(self.realtime_socket)
            return False
        if has_body:
            self.phase, self.deadline = Phase.BODY, now + self.limits.body_timeout_s
            expect = self.headers.get("Expect", "").lower() == "100-continue"
            waiting = message.chunked or message.length > len(self._buf)
            if expect and waiting and self.request_version >= "HTTP/1.1":
                self._send(b"HTTP/1.1 100 Continue\r\n\r\n", _Then.READ, now)
        return True

    def _content_length(self) -> int:
        try:
            return declared_length(self.headers.get_all("Content-Length") or [])
        except Refused as exc:
            raise _Early(exc.status, exc.detail) from None

    def _frame(self, head: bytes) -> Message:
        """The request's framing, decided once by h11 (``devtools/http_framing.py``);
        a declared length over the limit is a 413 before any of the body is read."""
        if self._content_length() > self.limits.max_body_bytes:
            raise _Early(413, f"Requests are limited to {self.limits.max_body_bytes // 2**20} MiB.")
        try:
            return parse_head(head, self.limits.max_header_bytes)
        except Refused as exc:
            raise _Early(exc.status, exc.detail) from None

    def _read_body(self) -> bool:
        """Take the buffered bytes into the body as its framing says; True once it
        is complete (what follows it stays buffered for the next request)."""
        try:
            data, done = self._message.read(bytes(self._buf))
        except Refused as exc:
            raise _Early(exc.status, exc.detail) from None
        self._buf.clear()
        self._body += data
        if len(self._body) > self.limits.max_body_bytes:
            raise _Early(413, f"Requests are limited to {self.limits.max_body_bytes // 2**20} MiB.")
        if done:
            self._buf += self._message.rest()
        return done

    # ------------------------------------------------------------ serving
    def _finish(self) -> None:
        """The request is complete: the app answers it, in this process, now."""
        message = self._message
        headers = dict(self.headers.items())
        raw = bytes(self._body) if message.chunked or message.length else None
        if message.chunked:  # the app sees the decoded body, as behind API Gateway
            headers = {k: v for k, v in headers.items() if k.lower() != "transfer-encoding"}
            headers["Content-Length"] = str(len(raw or b""))
        event = api_gateway_event(
            self.resources, self.command, self.path, headers=headers, body=raw or None
        )
        if event is None:
            instance = self._instance()
            result = local_problem(404, f"No route for {instance}.", instance, self._rid)
        else:
            result = self._invoke(event)
        self._respond(*result, keep_alive=self._client_keeps_alive())

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

    def _hand_over(self, path: str) -> None:
        """A stream (WebSocket, server-sent events) goes to the real-time process
        (devtools/realtime_hub.py), with what was read of it; the worker moves on."""
        try:
            realtime_http.hand_over(path, self.connection, self._head + bytes(self._buf))
        except OSError as exc:
            self._log(None, error=f"hand-over failed: {exc}")
            raise _Early(503, "The real-time endpoint is not running; retry shortly.") from None
        self._buf.clear()
        self._handed_over = True
        self.phase = Phase.DONE
        self._log(101, handed_over="realtime")

    def _client_keeps_alive(self) -> bool:
        """HTTP/1.1 unless ``Connection: close``; HTTP/1.0 only with ``keep-alive``;
        never with a Transfer-Encoding or past max_requests."""
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
        self,
        status: int,
        headers: dict[str, str],
        body: bytes,
        *,
        keep_alive: bool,
        then: _Then | None = None,
    ) -> None:
        origin, accept_encoding = self._browser
        headers, body = browser_http.finish(
            headers, body, origin=origin, accept_encoding=accept_encoding, origins=self.cors_origins
        )
        # the head in one piece, as http.server's send_response/send_header would write
        # it (status line, Server, Date, the headers, Content-Length, keep-alive),
        # without their per-header calls
        reason = _REASONS.get(status, "")
        lines = [
            f"{self.protocol_version} {status} {reason}\r\n"
            f"Server: {self.server_header}\r\nDate: {http_date()}\r\n"
        ]
        lines += [
            f"{name}: {value}\r\n"
            for name, value in headers.items()
            if name.lower() not in _HOP_BY_HOP
        ]
        lines.append(f"Content-Length: {len(body)}\r\n")
        self._served += 1
        if keep_alive:
            if self.request_version != "HTTP/1.1":
                lines.append("Connection: keep-alive\r\n")
            idle = self.limits.idle_timeout_s
            left = self.limits.max_requests - self._served
            lines.append(f"Keep-Alive: timeout={idle:g}, max={left}\r\n")
        else:
            lines.append("Connection: close\r\n")
        lines.append("\r\n")
        response = "".join(lines).encode("latin-1", "strict")
        if self.command != "HEAD":
            response += body
        self._log(status, request_id=headers.get("X-Request-Id"))
        self._new_request()
        then = then or (_Then.NEXT if keep_alive else _Then.CLOSE)
        self._send(response, then, time.monotonic())

    def _send(self, data: bytes, then: _Then, now: float) -> None:
        """Queue ``data`` (written as the socket takes it, within the body timeout)
        and try to write it at once."""
        if not self._out:
            self._write_deadline = now + self.limits.body_timeout_s
        self._out += data
        self._then = then
        self.writable(now)

    def _early(self, early: _Early) -> None:
        """Answer an early error (or just close) and end the connection."""
        self._buf.clear()
        if early.status is None:
            self.phase = Phase.DONE
            return
        self._rid = self._rid or str(uuid.uuid4())
        status, headers, body = local_problem(
            early.status, early.detail, self._instance(), self._rid
        )
        self.phase = Phase.LINGER  # nothing more is read as a request
        # a client that timed out gets no more of our time
        then = _Then.CLOSE if early.status == 408 else _Then.LINGER
        self._respond(status, headers, body, keep_alive=False, then=then)

    def _linger(self, now: float) -> None:
        """After answering early, drop what the client is still sending for a moment
        before closing: closing with unread input resets the connection, and the
        client could lose the answer."""
        try:
            self.connection.shutdown(socket.SHUT_WR)
        except OSError:
            self.phase = Phase.DONE
            return
        self.phase, self.deadline = Phase.LINGER, now + LINGER_S

    def _dropped(self, exc: BaseException) -> None:
        """The client went away or stopped reading: one log line, unless it was
        between requests."""
        if self.phase in (Phase.HEAD, Phase.BODY) or self._out:
            self._log(None, error=type(exc).__name__)
        self._out.clear()
        self.phase = Phase.DONE

    # ------------------------------------------------------------ per request
    def _new_request(self) -> None:
        self._rid = ""
        self._browser = self._NO_BROWSER
        self._head = b""
        self._body = bytearray()
        self._started = time.perf_counter()
        self.command, self.path, self.request_version = "", "", "HTTP/1.1"
        self.headers = _NO_FIELDS  # (a malformed head must not see the last request's)

    def _instance(self) -> str | None:
        return (urlsplit(self.path).path or None) if self.path else None

    def _log(self, status: int | None, **extra: Any) -> None:
        log_request(self.command, self.path, status, self._started, **extra)
