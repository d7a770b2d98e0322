"""The local server's real-time endpoints: ``/realtime`` (WebSocket) and
``GET /changes?feed=eventsource`` (server-sent events), on the server's own port.

The HTTP workers serve one request at a time, like Lambda environments, so a
long-lived stream cannot stay in one of them: a worker that reads such a
request hands the socket (and the bytes it read) over to this process through
a unix socket (``SCM_RIGHTS``) and goes back to serving.  This process owns
every stream in one asyncio loop:

* WebSocket: the handshake and framing are ``websockets``' sans-I/O
  ``ServerProtocol``; what a frame means is ``RealtimeService.handle``, the
  same use case the AWS route handler calls, against the same Redis registry.
  Each connection has a bounded queue (``DOCS_REALTIME_QUEUE_FRAMES``): a
  client that reads too slowly is closed with code 4008 and a reason, and
  resumes from its last ``seq``; the others never wait for it.
* The fan-out: a thread runs the same ``FanOut`` as the AWS function, over its
  own outbox cursor, woken by PostgreSQL NOTIFY at commit (with a poll
  fallback); its poster puts frames on the connections' queues.
* Server-sent events: ``SearchService.changes`` (the feed's own cursor rules;
  ``Last-Event-ID`` or ``since``), one event per change with ``id:`` = that
  change's cursor, a comment line as heartbeat; a stream reads the next page
  only once the client took the last one, so a slow reader slows only itself.

Never imported by Lambda code paths.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import io
import itertools
import json
import os
import secrets
import signal
import socket
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import parse_qs, urlsplit

from chalicelib.api.cors import add_headers, check_origin
from chalicelib.api.problems import error_frame_of, problem_of
from chalicelib.domain.errors import DomainError, Unauthorized
from chalicelib.domain.flags import REALTIME, require
from chalicelib.domain.model import make_etag
from chalicelib.domain.principal import Principal
from chalicelib.domain.realtime import (
    CLOSE_EXPIRED,
    CLOSE_GIVE_UP,
    EXPIRED_REASON,
    REVOKED_REASON,
    Credentials,
    PostResult,
    close_frame,
    closing,
    encode,
    error_frame,
    token_from_subprotocols,
)
from devtools.logline import log_line
from devtools.realtime_http import event_stream_head, problem_answer, receive
from devtools.realtime_ws import WsConnection

LISTENER_APP = "docs-realtime"
# the fan-out makes at most one pass this often (outbox_listener.Pace): under load a
# pass takes a batch of commits, not one; an event reaches its subscribers at most
# this much later
FAN_OUT_PACE_S = 0.05
_DATA = (0, 1, 2)  # continuation, text and binary frames


# --------------------------------------------------------------------- the poster
class LocalPoster:
    """``Poster`` for the hub's own connections (ids it made); others are not its."""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub

    def post(self, connection_id: str, data: str) -> PostResult:
        if not connection_id.startswith(self.hub.tag):
            return "ok"  # another server's connection (a shared registry): not ours to drop
        conn = self.hub.conns.get(connection_id)
        if conn is None:
            return "gone"
        self.hub.loop.call_soon_threadsafe(conn.push, data)
        return "ok"

    def owns(self, connection_id: str) -> bool:
        return connection_id.startswith(self.hub.tag)

    def close(
        self, connection_id: str, code: int = CLOSE_GIVE_UP, reason: str = "closed by the server"
    ) -> None:
        conn = self.hub.conns.get(connection_id)
        if conn is not None:
            self.hub.loop.call_soon_threadsafe(conn.fail, code, reason)


# --------------------------------------------------------------------------- hub
class Hub:
    def __init__(self, container: Any, loop: asyncio.AbstractEventLoop) -> None:
        self.container = container
        self.loop = loop
        self.settings = container.settings
        self.tag = f"local-{os.getpid()}-{secrets.token_hex(3)}-"
        self.ids = itertools.count(1)
        self.conns: dict[str, WsConnection] = {}
        self.max_frames = self.settings.realtime_queue_frames
        self.pool = ThreadPoolExecutor(16, thread_name_prefix="realtime")
        self._wake = asyncio.Event()
        self.fanout: Any = None  # set by main: the FanOut with this hub's poster

    def pulse(self) -> None:
        """Something was committed: wake every event stream (loop thread)."""
        wake, self._wake = self._wake, asyncio.Event()
        wake.set()

    async def call(self, fn: Any, *args: Any) -> Any:
        return await self.loop.run_in_executor(self.pool, fn, *args)

    async def serve(self, sock: socket.socket, data: bytes) -> None:
        try:
            reader, writer = await asyncio.open_connection(sock=sock)
        except OSError:
            sock.close()
            return
        try:
            line = data.split(b"\n", 1)[0].decode("latin-1").split()
            path = line[1] if len(line) > 1 else "/"
            if urlsplit(path).path == "/realtime":
                await self.websocket(reader, writer, data)
            else:
                await self.event_stream(reader, writer, data, path)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        except Exception as exc:  # one connection's bug must not go unnoticed, nor spread
            log_line("realtime connection failed", error=f"{type(exc).__name__}: {str(exc)[:300]}")
        finally:
            if not writer.is_closing():
                writer.close()

    # -- authentication ------------------------------------------------------------------
    def _credentials(self, token: str | None, request_id: str) -> Credentials:
        if not token:
            raise Unauthorized(
                "Send the token as a subprotocol ('bearer.<token>'), as ?token=<token> "
                "or as 'Authorization: Bearer <token>'."
            )
        creds: Credentials = self.container.stream_credentials(token, request_id)
        return creds

    # -- WebSocket -------------------------------------------------------------------------
    async def websocket(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, data: bytes
    ) -> None:
        conn = await self._handshake(writer, data)
        if conn is None:
            return
        sender = asyncio.create_task(conn.send_loop())
        try:
            await self._read_frames(conn, reader)
        finally:
            conn.closing = True
            conn.wake.set()
            sender.cancel()
            self.conns.pop(conn.id, None)
            with contextlib.suppress(DomainError):  # else the registry's TTL forgets it
                await self.call(self.container.realtime.disconnect, conn.id)

    async def _handshake(self, writer: asyncio.StreamWriter, data: bytes) -> WsConnection | None:
        """Authenticate and register (the same use case as ``$connect``), then accept."""
        from websockets.http11 import Request
        from websockets.server import ServerProtocol

        selected: list[str | None] = [None]
        proto = ServerProtocol(
            select_subprotocol=lambda _p, _offered: selected[0],  # type: ignore[arg-type,return-value]
            max_size=64 * 1024,
        )
        proto.receive_data(data)
        request = next((e for e in proto.events_received() if isinstance(e, Request)), None)
        if request is None:
            return None
        offered = ",".join(request.headers.get_all("Sec-WebSocket-Protocol")).split(",")
        token, selected[0] = token_from_subprotocols(offered)
        token = token or (parse_qs(urlsplit(request.path).query).get("token") or [""])[0]
        conn_id = f"{self.tag}{next(self.ids)}"
        try:
            check_origin(request.headers.get("Origin"), self.settings.cors_origins)
            creds = self._credentials(token, conn_id)
            await self.call(self._require_realtime, creds)
            await self.call(self.container.realtime.connect, conn_id, creds)
        except DomainError as exc:
            proto.send_response(proto.reject(problem_of(exc).status, exc.detail + "\n"))
            for chunk in proto.data_to_send():
                writer.write(chunk)
            await writer.drain()
            return None
        proto.send_response(proto.accept(request))
        conn = WsConnection(self, conn_id, proto, writer)
        conn.flush()
        if proto.handshake_exc is not None:
            return None
        sock = writer.get_extra_info("socket")
        if sock is not None:  # a small kernel buffer: a slow reader shows up in our queue
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 16 * 1024)
        self.conns[conn_id] = conn
        conn.expire_at(creds.expires_at)
        return conn

    async def _read_frames(self, conn: WsConnection, reader: asyncio.StreamReader) -> None:
        from websockets.frames import Frame, Opcode

        proto = conn.proto
        message: list[bytes] = []
        while not conn.closing:
            chunk = await reader.read(65536)
            if chunk:
                proto.receive_data(chunk)
            else:
                proto.receive_eof()
            for frame in proto.events_received():
                if isinstance(frame, Frame) and frame.opcode in _DATA:
                    message.append(bytes(frame.data))
                    if frame.fin:
                        raw, message = b"".join(message), []
                        await self._frame(conn, raw, frame.opcode == Opcode.BINARY)
            conn.flush()
            if not chunk or proto.close_expected():
                return

    async def _frame(self, conn: WsConnection, raw: bytes, binary: bool) -> None:
        if binary:
            answers = [error_frame(400, "Bad frame", "Send JSON text frames.")]
        else:
            answers = await self.call(self.container.realtime.handle, conn.id, raw)
        ended = closing(answers)
        for answer in answers:
            if answer is ended:
                conn.end(answer)
                return
            conn.push(encode(answer))
            if answer.get("type") == "authenticated":
                conn.expire_at(float(answer["expires_at"]))

    # -- server-sent events ------------------------------------------------------------------
    async def event_stream(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, data: bytes, path: str
    ) -> None:
        head = data.split(b"\n", 1)[1] if b"\n" in data else b""
        headers = http.client.parse_headers(io.BytesIO(head))
        rid = str(uuid.uuid4())
        query = parse_qs(urlsplit(path).query)
        scheme, _, bearer = (headers.get("Authorization") or "").partition(" ")
        token = bearer.strip() if scheme.lower() == "bearer" else None
        token = token or next(iter(query.get("token", [])), None)
        since = headers.get("Last-Event-ID") or next(iter(query.get("since", [])), None)
        search = self.container.search
        cors_headers: dict[str, str] = {}  # an EventSource on another origin reads them
        add_headers(cors_headers, headers.get("Origin"), self.settings.cors_origins)
        try:
            creds = await self._stream_credentials(token, rid)
            who = creds.who
            page = await self.call(_read_feed, search, who, since)
        except DomainError as exc:
            writer.write(problem_answer(exc, rid, cors_headers))
            await writer.drain()
            return
        writer.write(event_stream_head(rid, cors_headers))
        writer.write(b"retry: 2000\n\n")
        gone = asyncio.create_task(reader.read())  # the client closing its side
        last_write = time.monotonic()
        heartbeat = self.settings.realtime_heartbeat_s
        while not gone.done():
            ended = await self._stream_ended(creds)
            if ended is not None:  # the token expired or was revoked: the stream ends here
                writer.write(f"event: close\ndata: {json.dumps(ended)}\n\n".encode())
                await writer.drain()
                break
            for change in page["changes"]:
                event = {"type": "change", **change,
                         "etag": make_etag(who.org, change["id"], change["version"])}  # fmt: skip
                writer.write(
                    f"id: {change['seq']}\nevent: change\ndata: {json.dumps(event)}\n\n".encode()
                )
            if page["changes"]:
                last_write = time.monotonic()
            await writer.drain()
            since = page["next"]
            if not page["changes"]:
                wake = self._wake
                timeout = min(1.0, max(0.05, heartbeat - (time.monotonic() - last_write)),
                              max(0.05, creds.expires_at - time.time()))  # fmt: skip
                await asyncio.wait({gone, asyncio.ensure_future(wake.wait())}, timeout=timeout,
                                   return_when=asyncio.FIRST_COMPLETED)  # fmt: skip
                if time.monotonic() - last_write >= heartbeat:
                    writer.write(b": heartbeat\n\n")
                    await writer.drain()
                    last_write = time.monotonic()
            try:
                page = await self.call(_read_feed, search, who, since)
            except DomainError as exc:
                frame = json.dumps(error_frame_of(exc))
                writer.write(f"event: error\ndata: {frame}\n\n".encode())
                break
        gone.cancel()

    async def _stream_credentials(self, token: str | None, rid: str) -> Credentials:
        """An event stream's credentials: a valid token, not revoked."""
        creds = self._credentials(token, rid)
        who = creds.who
        if await self.call(self.container.realtime.revoked, who.org, who.sub, creds.issued_at):
            raise Unauthorized("The token was revoked; sign in again.")
        await self.call(self._require_realtime, creds)
        return creds

    def _require_realtime(self, creds: Credentials) -> None:
        """403 ``feature-disabled`` when the ``realtime`` flag is off for the caller."""
        require(self.container.flags, REALTIME, org=creds.who.org, user=creds.who.sub)

    async def _stream_ended(self, creds: Credentials) -> dict[str, Any] | None:
        """The ``close`` frame of an event stream whose token expired or was revoked."""
        if time.time() >= creds.expires_at:
            return close_frame(CLOSE_EXPIRED, EXPIRED_REASON)
        who = creds.who
        try:
            revoked = await self.call(self.container.realtime.revoked, who.org, who.sub,
                                      creds.issued_at)  # fmt: skip
        except DomainError:  # the registry is out: the stream cannot tell, so it ends
            return close_frame(CLOSE_EXPIRED, "cannot check the token now: reconnect shortly")
        return close_frame(CLOSE_EXPIRED, REVOKED_REASON) if revoked else None

    # -- the fan-out thread -------------------------------------------------------------------
    def fan_out(self, stop: threading.Event, poll_s: float = 0.5) -> None:
        from chalicelib.adapters.postgres.outbox_listener import (
            Pace,
            listening_connection,
            take_pending,
        )

        fanout = self.fanout
        uow = self.container.uow
        listener: Any = None
        eager_until = 0.0
        pace = Pace(FAN_OUT_PACE_S, sleep=stop.wait)
        while not stop.is_set():
            try:
                if listener is None:
                    name = listener_name(uow.settings.realtime_consumer)
                    listener = listening_connection(uow, "docs_outbox", name)
                pace.before_pass()
                if take_pending(listener):  # commits this pass will see: no pass of their own
                    self.loop.call_soon_threadsafe(self.pulse)
                    eager_until = time.monotonic() + 1.0
                started = time.perf_counter()
                report = fanout.drain()
                if report.rows:
                    eager_until = 0.0
                    ms = round((time.perf_counter() - started) * 1000, 1)
                    log_line("realtime fan-out", **report.as_dict(), ms=ms)
                wait_s = 0.02 if time.monotonic() < eager_until else poll_s
                woke = any(True for _ in listener.notifies(timeout=wait_s, stop_after=1))
                if woke:
                    self.loop.call_soon_threadsafe(self.pulse)
                    eager_until = time.monotonic() + 1.0  # the horizon may lag the commit
            except Exception as exc:  # the loop outlives any one failure
                log_line(
                    "realtime fan-out waiting", reason=f"{type(exc).__name__}: {str(exc)[:300]}"
                )
                if listener is not None:
                    listener.close()
                    listener = None
                stop.wait(1.0)
        if listener is not None:
            listener.close()


def listener_name(consumer: str) -> str:
    """The fan-out's LISTEN connection's ``application_name``: ``docs-realtime PID
    CONSUMER``, so the process and its cursor (``realtime_cursors.name``) can be
    found from ``pg_stat_activity`` (as the search sync's consumers are)."""
    return f"{LISTENER_APP} {os.getpid()} {consumer}"[:63]


def parse_listener(application_name: str | None) -> tuple[int, str] | None:
    """(pid, consumer) from a ``listener_name``; None for any other connection."""
    parts = (application_name or "").split(" ")
    if len(parts) != 3 or parts[0] != LISTENER_APP or not parts[1].isdigit():
        return None
    return int(parts[1]), parts[2]


def _read_feed(search: Any, who: Principal, since: str | None) -> dict[str, Any]:
    page: dict[str, Any] = search.changes(who, since=since, limit=100)
    return page


# ----------------------------------------------------------------- the process
def main(path: str) -> None:
    """Entry point of the local server's real-time process."""
    from chalicelib import bootstrap
    from chalicelib.config import Settings

    # its own cursor: a second server on the same database does not split the stream
    consumer = f"local-{socket.gethostname()[:12]}-{os.getpid()}-{secrets.token_hex(3)}"
    # posting is a queue put here: no thread pool
    container = bootstrap.build(Settings(realtime_consumer=consumer, realtime_parallel_posts=1))
    bootstrap.set_container(container)
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    hub = Hub(container, loop)
    stop = threading.Event()
    hub.fanout = container.realtime_fanout(LocalPoster(hub))
    hub.fanout.run_once()  # the cursor starts now: nothing before it is replayed
    if os.path.exists(path):
        os.unlink(path)
    unix = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    unix.bind(path)
    unix.listen(128)

    def serve(sock: socket.socket, data: bytes) -> None:
        asyncio.run_coroutine_threadsafe(hub.serve(sock, data), hub.loop)

    threading.Thread(target=receive, args=(unix, serve), daemon=True, name="handover").start()
    threading.Thread(target=hub.fan_out, args=(stop,), daemon=True, name="fanout").start()

    def shutdown(*_: Any) -> None:
        stop.set()
        loop.call_soon_threadsafe(loop.stop)

    signal.signal(signal.SIGTERM, shutdown)
    signal.signal(signal.SIGINT, shutdown)
    log_line("realtime hub started", socket=path, consumer=consumer)
    try:
        loop.run_forever()
    finally:
        unix.close()
        if os.path.exists(path):
            os.unlink(path)
        container.close()
