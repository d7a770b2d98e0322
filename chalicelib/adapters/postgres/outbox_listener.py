"""Long-running outbox consumers (the local sync loop): each LISTENs on its own
connection for commits that wrote the outbox, and registers itself there so
consumers can see each other."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import psycopg

from chalicelib.adapters.postgres.uow import PostgresUnitOfWork

_CONSUMER_SPACE = 0x636F6E73  # "cons": advisory lock space of registered consumers
_APP_NAME = "docs-sync"


@dataclass(frozen=True)
class Consumer:
    """A long-running consumer registered on the outbox: ``key`` names where it
    writes (compare these), ``target`` says it for people, ``pid`` is its process."""

    pid: int
    key: str
    target: str

    @property
    def application_name(self) -> str:
        return f"{_APP_NAME} {self.pid} {self.key} {self.target}"[:63]

    @classmethod
    def parse(cls, application_name: str | None) -> Consumer | None:
        parts = (application_name or "").split(" ", 3)
        if len(parts) != 4 or parts[0] != _APP_NAME or not parts[1].isdigit():
            return None
        return cls(int(parts[1]), parts[2], parts[3])


class CommitListener:
    """A connection of its own that LISTENs for commits that wrote the outbox."""

    def __init__(self, conn: psycopg.Connection[dict[str, Any]]) -> None:
        self.conn = conn

    @property
    def closed(self) -> bool:
        return self.conn.closed

    def wait(self, timeout_s: float) -> bool:
        """Until a notification arrives (True) or ``timeout_s`` passes (False)."""
        return wait_for_commit(self.conn, timeout_s)

    def take_pending(self) -> int:
        """Take the notifications already here without waiting (``take_pending``)."""
        return take_pending(self.conn)

    def close(self) -> None:
        self.conn.close()


class OutboxListener(CommitListener):
    """A registered consumer's listener: it also registers the consumer while it is
    open (a shared advisory lock, the consumer in ``application_name``), so
    consumers can see each other."""

    def __init__(self, conn: psycopg.Connection[dict[str, Any]], me: Consumer) -> None:
        super().__init__(conn)
        self.me = me

    def others(self) -> list[Consumer]:
        """The other consumers registered on this database's outbox."""
        rows = self.conn.execute(
            "SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a USING (pid) "
            "WHERE l.locktype = 'advisory' AND l.granted AND l.pid <> pg_backend_pid() "
            "AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database()) "
            "AND l.classid = %s::oid AND l.objid = 0 AND l.objsubid = 2",
            (_CONSUMER_SPACE,),
        ).fetchall()
        found = (Consumer.parse(r["application_name"]) for r in rows)
        return [c for c in found if c is not None]


def listen(uow: PostgresUnitOfWork, channel: str, me: Consumer) -> OutboxListener:
    """Open ``me``'s listener connection (as the runtime login, like the pool's)."""
    conn = listening_connection(uow, channel, me.application_name, shared_lock=_CONSUMER_SPACE)
    return OutboxListener(conn, me)


def listening_connection(
    uow: PostgresUnitOfWork, channel: str, application_name: str, *, shared_lock: int | None = None
) -> psycopg.Connection[dict[str, Any]]:
    """A connection of its own (as the runtime login) that LISTENs on ``channel``;
    with ``shared_lock``, it first takes that advisory lock space's shared lock (a
    registered consumer; a consumer that writes nowhere, like the webhook
    deliverer, listens without registering)."""
    kwargs = {**uow._connect_kwargs(), "autocommit": True, "application_name": application_name}
    conn: psycopg.Connection[dict[str, Any]] = psycopg.connect(
        uow.settings.runtime_database_url, **kwargs
    )
    try:
        if shared_lock is not None:
            conn.execute("SELECT pg_advisory_lock_shared(%s, 0)", (shared_lock,))
        conn.execute(psycopg.sql.SQL("LISTEN {}").format(psycopg.sql.Identifier(channel)))
    except BaseException:
        conn.close()
        raise
    return conn


def wait_for_commit(conn: psycopg.Connection[Any], timeout_s: float) -> bool:
    """Until a notification arrives on ``conn`` (True) or ``timeout_s`` passes (False)."""
    return any(True for _ in conn.notifies(timeout=timeout_s, stop_after=1))


def take_pending(conn: psycopg.Connection[Any]) -> int:
    """The notifications already received on ``conn``, taken without waiting; how many.

    A consumer calls it right before a pass: every commit they announce is already
    visible to the pass, so they need no pass of their own.  (Without it, a burst of
    N commits woke a consumer N times, each pass after the first finding little or
    nothing: under load the search sync, the fan-out and the webhook deliverer spent
    more CPU than the API workers.)"""
    return sum(1 for _ in conn.notifies(timeout=0))


class Pace:
    """At most one pass every ``interval_s``: a consumer calls ``before_pass`` before
    each.  An idle consumer (last pass longer ago than the interval) goes at once, so a
    lone write is not delayed; a busy one waits out the rest of the interval and then
    takes every commit of it in one pass.  The price is at most ``interval_s`` of
    added lag under load; the gain, passes that carry many rows instead of one (each
    pass costs its round trips and wake-ups whatever it carries)."""

    def __init__(
        self,
        interval_s: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Any] = time.sleep,
    ) -> None:
        self.interval_s = interval_s
        self._clock = clock
        self._sleep = sleep
        self._last: float | None = None

    def before_pass(self) -> float:
        """Wait until a pass may start; the seconds waited."""
        now = self._clock()
        waited = 0.0
        if self._last is not None:
            waited = max(0.0, self._last + self.interval_s - now)
            if waited:
                self._sleep(waited)
                now = self._clock()
        self._last = now
        return waited
