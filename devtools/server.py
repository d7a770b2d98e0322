"""Local HTTP server: each request becomes an API Gateway proxy event for ``app.handler``.

Concurrency is modelled on Lambda, not on threads: Chalice keeps the request
in ``app.current_request`` (shared, not thread-safe), and Lambda runs one
invocation per execution environment at a time.  So the parent opens one
listening socket and forks N worker processes, each with its own app
instance, pools and clients, like N warm execution environments; each worker
runs one request at a time, on its only thread.

A connection is not a worker, though: each worker multiplexes many connections
(up to ``MAX_CONNECTIONS``) with a selector, the design of gunicorn's gthread
worker with one thread.  It accepts new connections, parks idle keep-alive
ones, reads heads and bodies as their bytes arrive, writes answers as the
sockets take them, and serves whichever connection has a complete request, one
request at a time (``devtools/http_connection.py``).  So no connection waits
for another one's idle keep-alive, slow upload or unread answer, only for the
requests being served; and while a worker runs a request, the others accept
and serve.

Connections are HTTP/1.1 persistent (keep-alive, pipelining) unless the
client says ``Connection: close`` (or speaks HTTP/1.0 without keep-alive).
Each request is read against a total deadline for the request line and
headers and another for the body; between requests a connection may stay idle
for ``idle_timeout_s`` and carry at most ``max_requests`` requests (``Limits``,
from ``DOCS_LOCAL_*``).  Where a request ends is decided once, by h11
(``devtools/http_framing.py``): a malformed or ambiguous head is a 400 (an
unknown transfer coding a 501), and a chunked body is decoded.  After an early
error (400, 408, 413, 414, 431, 501, 505) the connection is closed.  Requests
over API Gateway's sizes (10240 bytes of request line and headers, 10 MiB of
body) and malformed ones get the same problem+json, security headers and
``X-Request-Id`` as the app's own answers.  Each request is logged as one JSON
line, with any credential in it redacted (``chalicelib.redaction``); a client
that goes away mid-response costs one log line, never a traceback.
"""

from __future__ import annotations

import collections
import dataclasses
import errno
import multiprocessing
import os
import selectors
import signal
import socket
import sys
import time
import warnings
from collections.abc import Callable
from typing import Any

from chalicelib.config import get_settings
from devtools import realtime_http
from devtools.http_connection import Connection
from devtools.local_http import MAX_HEADER_BYTES, MAX_REQUEST_BYTES, Limits
from devtools.logline import log_line

__all__ = ["MAX_HEADER_BYTES", "MAX_REQUEST_BYTES", "Limits", "PortUnavailable", "listen", "serve"]
_WAIT_S = 1.0  # the longest select: deadlines are checked at least this often
MAX_CONNECTIONS = 512  # per worker; past it, new connections wait in the backlog for another


class _Worker:
    """One process's connections, driven from one selector, one request at a time."""

    def __init__(self, listener: socket.socket) -> None:
        listener.setblocking(False)  # several workers race for each new connection
        self.listener = listener
        self.selector = selectors.DefaultSelector()
        self.selector.register(listener, selectors.EVENT_READ, None)
        self.accepting_after: float | None = None  # not accepting until then
        self.conns: set[Connection] = set()
        self.ready: collections.deque[Connection] = collections.deque()

    def run(self) -> None:
        while True:
            self.step()

    def step(self) -> None:
        """Wait for the next events (at most until the next deadline) and act on them."""
        now = time.monotonic()
        self._resume_accepting(now)
        wait = 0.0 if self.ready else self._wait(now)
        for key, mask in self.selector.select(wait):
            conn = key.data
            now = time.monotonic()
            if conn is None:
                self._accept(now)
            elif mask & selectors.EVENT_WRITE:
                self._settle(conn, conn.writable(now))
            else:
                self._settle(conn, conn.readable(now))
        self._serve_ready()
        self._expire(time.monotonic())

    def _wait(self, now: float) -> float:
        due = min((conn.due() for conn in self.conns), default=now + _WAIT_S)
        return min(max(due - now, 0.0), _WAIT_S)

    def _accept(self, now: float) -> None:
        """One new connection (another worker may have taken it: nothing to do)."""
        try:
            sock, address = self.listener.accept()
        except (BlockingIOError, InterruptedError, ConnectionAbortedError):
            return
        except OSError as exc:  # out of descriptors: the others wait in the backlog
            log_line("accept failed", level="WARNING", error=str(exc))
            self._pause_accepting(now + _WAIT_S)
            return
        try:
            conn = Connection(sock, address, now)
        except OSError:  # reset before it was set up
            sock.close()
            return
        self.conns.add(conn)
        self.selector.register(sock, selectors.EVENT_READ, conn)
        if len(self.conns) >= MAX_CONNECTIONS:
            self._pause_accepting(now)

    def _pause_accepting(self, until: float) -> None:
        if self.accepting_after is None:
            self.selector.unregister(self.listener)
        self.accepting_after = until

    def _resume_accepting(self, now: float) -> None:
        after = self.accepting_after
        if after is not None and after <= now and len(self.conns) < MAX_CONNECTIONS:
            self.selector.register(self.listener, selectors.EVENT_READ, None)
            self.accepting_after = None

    def _serve_ready(self) -> None:
        """Connections with more buffered bytes (pipelining): one request each, in turn."""
        for _ in range(len(self.ready)):
            conn = self.ready.popleft()
            if conn in self.conns:
                self._settle(conn, conn.advance(time.monotonic()))

    def _expire(self, now: float) -> None:
        for conn in [c for c in self.conns if c.due() <= now]:
            conn.expire(now)
            self._settle(conn, False)

    def _settle(self, conn: Connection, more: bool) -> None:
        """Watch ``conn`` for what it waits on next, or let it go."""
        if conn.done:
            self.selector.unregister(conn.connection)
            self.conns.discard(conn)
            conn.release()
            return
        events = selectors.EVENT_WRITE if conn.wants_write() else selectors.EVENT_READ
        if self.selector.get_key(conn.connection).events != events:
            self.selector.modify(conn.connection, events, conn)
        if more and conn not in self.ready:
            self.ready.append(conn)


def _worker(sock: socket.socket, limits: Limits) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent coordinates shutdown
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    warnings.filterwarnings("ignore", message="No application metrics to publish")
    import app as app_module  # imported in the worker: one app per "execution environment"

    Connection.app_module = app_module
    Connection.resources = tuple(app_module.app.routes)
    Connection.limits = limits
    Connection.realtime_socket = os.environ.get(realtime_http.ENV_SOCKET) or None
    Connection.cors_origins = get_settings().cors_origins
    _Worker(sock).run()


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
    log_line(
        "serving", url=f"http://{host}:{port}", workers=workers, limits=dataclasses.asdict(limits)
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
