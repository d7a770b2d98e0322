"""Long-running outbox consumers (the local sync loop): each LISTENs on its own
connection for commits that wrote the outbox, and registers itself there so
consumers can see each other."""

from __future__ import annotations

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


class OutboxListener:
    """A consumer's own connection: it LISTENs for commits that wrote the outbox,
    and registers the consumer while it is open (a shared advisory lock, the
    consumer in ``application_name``), so consumers can see each other."""

    def __init__(self, conn: psycopg.Connection[dict[str, Any]], me: Consumer) -> None:
        self.conn = conn
        self.me = me

    @property
    def closed(self) -> bool:
        return self.conn.closed

    def wait(self, timeout_s: float) -> bool:
        """Until a notification arrives (True) or ``timeout_s`` passes (False)."""
        return any(True for _ in self.conn.notifies(timeout=timeout_s, stop_after=1))

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

    def close(self) -> None:
        self.conn.close()


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
