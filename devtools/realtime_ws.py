"""One local WebSocket connection of the real-time process: its bounded queue of
frames in front of a small socket buffer, its end when the token expires, and the
close of a client that reads nothing."""

from __future__ import annotations

import asyncio
import time
from collections import deque
from typing import Any, Protocol

from chalicelib.domain.realtime import (
    CLOSE_EXPIRED,
    CLOSE_SLOW,
    CLOSE_SLOW_REASON,
    EXPIRED_REASON,
    close_frame,
    encode,
)
from devtools.logline import log_line

WRITE_BUFFER = 32 * 1024  # bytes written but not yet taken by the kernel: then queue
REAP_CHECK_S, REAP_IDLE_S = 1.0, 30.0  # a closed-on client that reads nothing for 30 s: cut


class HubState(Protocol):
    """What a connection needs of the process that holds it."""

    loop: asyncio.AbstractEventLoop
    conns: dict[str, WsConnection]
    max_frames: int


class WsConnection:
    def __init__(
        self, hub: HubState, conn_id: str, proto: Any, writer: asyncio.StreamWriter
    ) -> None:
        self.hub = hub
        self.id = conn_id
        self.proto = proto
        self.writer = writer
        self.queue: deque[str] = deque()
        self.wake = asyncio.Event()
        self.closing = False
        self.expires_at = float("inf")
        self._expiry: asyncio.TimerHandle | None = None

    def flush(self) -> None:
        for chunk in self.proto.data_to_send():
            if chunk:
                self.writer.write(chunk)
            elif not self.writer.is_closing():
                self.writer.close()

    def push(self, data: str) -> None:
        """A frame for this client: written at once while the client keeps up, else
        queued; past the queue's bound the client is too slow and is closed."""
        if self.closing:
            return
        if not self.queue and self.writer.transport.get_write_buffer_size() < WRITE_BUFFER:
            self.proto.send_text(data.encode())
            self.flush()
            return
        if len(self.queue) >= self.hub.max_frames:
            self.fail(CLOSE_SLOW, CLOSE_SLOW_REASON)
            return
        self.queue.append(data)
        self.wake.set()

    def expire_at(self, expires_at: float) -> None:
        """End the connection when its token expires (a re-auth moves it), even
        when the registry or the fan-out is unreachable."""
        self.expires_at = expires_at
        if self._expiry is not None:
            self._expiry.cancel()
        if expires_at != float("inf"):
            delay = max(0.0, expires_at - time.time())
            self._expiry = self.hub.loop.call_later(delay, self._expire)

    def _expire(self) -> None:
        if time.time() >= self.expires_at:
            self.end(close_frame(CLOSE_EXPIRED, EXPIRED_REASON))
        else:  # a timer may fire a little early
            self.expire_at(self.expires_at)

    def end(self, frame: dict[str, Any]) -> None:
        """Send the ``close`` frame (why), then close with its code and reason."""
        if self.closing:
            return
        self.proto.send_text(encode(frame).encode())
        self.fail(int(frame["code"]), str(frame["reason"]))

    def fail(self, code: int, reason: str) -> None:
        """Close with ``code``: what is already written goes first; a client that
        never reads again is cut off after a grace period."""
        if self.closing:
            return
        self.closing = True
        if self._expiry is not None:
            self._expiry.cancel()
        self.queue.clear()
        self.wake.set()
        log_line("realtime connection closed", connection=self.id, code=code)
        self.hub.conns.pop(self.id, None)
        self.proto.send_close(code, reason)
        self.flush()
        self._reap(-1, 0)

    def _reap(self, last: int, idle: int) -> None:
        """After the close frame: drop the socket once the client read what was
        written, or once it has read nothing for ``REAP_IDLE_S``."""
        transport = self.writer.transport
        pending = transport.get_write_buffer_size()
        if pending == 0:  # all written (a closing transport then closes by itself)
            if not transport.is_closing():
                self.writer.close()
            return
        idle = idle + 1 if pending == last else 0
        if idle * REAP_CHECK_S >= REAP_IDLE_S:
            transport.abort()
            return
        self.hub.loop.call_later(REAP_CHECK_S, self._reap, pending, idle)

    async def send_loop(self) -> None:
        while not self.closing:
            await self.wake.wait()
            self.wake.clear()
            while self.queue and not self.closing:
                await self.writer.drain()
                while self.queue and self.writer.transport.get_write_buffer_size() < WRITE_BUFFER:
                    self.proto.send_text(self.queue.popleft().encode())
                    self.flush()
                if self.queue:
                    await asyncio.sleep(0.01)  # until the kernel took some
