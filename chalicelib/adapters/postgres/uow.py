"""The PostgreSQL unit of work: a process-wide pool, one transaction at a time.

The pool connects as the runtime login (``Settings.runtime_database_url``),
which owns nothing and may only act as ``docs_app``; row-level security is
forced on every tenant table (docs/database-roles.md).  Cross-org maintenance
(cache repair, the search sync, upload expiry) runs as ``docs_app`` too,
through ``SECURITY DEFINER`` functions that return ids and versions only
(``maintenance``); content is then read under the row's org.

RDS Proxy friendly: the pool is created once per execution environment and
reused across invocations; server-side prepared statements are off
(``prepare_threshold=None``); nothing is set on the session: the tenant, the
``docs_app`` role (so row-level security applies) and the statement timeout
are all set with ``set_config(..., true)``, i.e. ``SET LOCAL``, and vanish at
commit.  With ``DOCS_DB_IAM_AUTH`` each new connection gets a fresh IAM token.

Vendor errors are mapped here, once: connection-level failures become
``DependencyUnavailable`` (503 + Retry-After), never a 500.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict
from psycopg.rows import class_row, dict_row
from psycopg_pool import ConnectionPool, PoolTimeout

from chalicelib.adapters.postgres.access import readable_ids_query
from chalicelib.adapters.postgres.documents import DOC_COLUMNS
from chalicelib.adapters.postgres.identity import read_identity
from chalicelib.adapters.postgres.transaction import PostgresTransaction, after_begin
from chalicelib.config import Settings
from chalicelib.domain.errors import DependencyUnavailable, TransientDatabaseError
from chalicelib.domain.model import Document
from chalicelib.domain.viewer import Viewer
from chalicelib.observability import subsegment

_UNAVAILABLE = (psycopg.OperationalError, psycopg.InterfaceError, PoolTimeout)
_ROLLED_BACK = (psycopg.errors.SerializationFailure, psycopg.errors.DeadlockDetected)
_BEGIN_CACHE = 1024  # orgs whose BEGIN text a process keeps (``_settings``)


class PostgresUnitOfWork:
    """Owns the pool; hands out one tenant-scoped transaction at a time."""

    IDLE_CHECK_S = 5.0

    def __init__(self, settings: Settings, *, pool_max: int | None = None) -> None:
        self.settings = settings
        self._pool_max = pool_max or settings.db_pool_max
        self._pool: ConnectionPool[psycopg.Connection[dict[str, Any]]] | None = None
        self._lock = threading.Lock()
        self._returned_at: dict[int, float] = {}
        self._database_id: str | None = None  # identity.py; read with the first connection
        # outbox inserts NOTIFY docs_outbox at commit (the local consumer listens)
        self._notify = settings.search_nudge == "notify"
        self._begin_text: dict[str, str] = {}  # org -> BEGIN and its settings (``_settings``)

    # -- connection management ------------------------------------------------
    def _connect_kwargs(self) -> dict[str, Any]:
        kwargs: dict[str, Any] = {
            # transactions are explicit (see ``transaction``): BEGIN travels
            # with the tenant settings instead of costing its own round trip
            "autocommit": True,
            "prepare_threshold": None,
            "row_factory": dict_row,
            "connect_timeout": max(1, round(self.settings.db_connect_timeout_s)),
            "application_name": "docs-service",
        }
        # sslmode (require by default with IAM auth) and, to verify, sslrootcert
        kwargs.update(self.settings.db_ssl_params())
        if self.settings.db_iam_auth:
            kwargs["password"] = self.iam_token()
        return kwargs

    def iam_token(self, conninfo: str | None = None) -> str:
        """A 15-minute RDS IAM auth token for the user of ``conninfo`` (default:
        the runtime login) (boto3, lazily imported)."""
        import boto3  # lazy: only IAM-auth deployments pay for it

        params = conninfo_to_dict(conninfo or self.settings.runtime_database_url)
        client = boto3.client("rds", region_name=self.settings.aws_region)
        return str(
            client.generate_db_auth_token(
                DBHostname=str(params.get("host") or ""),
                Port=int(params.get("port") or 5432),
                DBUsername=str(params.get("user") or ""),
                Region=self.settings.aws_region,
            )
        )

    @property
    def pool(self) -> ConnectionPool[psycopg.Connection[dict[str, Any]]]:
        if self._pool is None:
            with self._lock:
                if self._pool is None:
                    self._pool = ConnectionPool(
                        self.settings.runtime_database_url,
                        kwargs=self._connect_kwargs,
                        min_size=min(self.settings.db_pool_min, self._pool_max),
                        max_size=self._pool_max,
                        timeout=self.settings.db_connect_timeout_s,
                        reconnect_timeout=30.0,
                        open=True,
                        name="docs",
                        check=self._check_if_idle,
                    )
        return self._pool

    @contextmanager
    def _checkout(self) -> Iterator[psycopg.Connection[dict[str, Any]]]:
        """A pooled connection, stamped with its last use when it goes back.

        (Stamping here rather than in a pool ``reset`` hook keeps the return
        inline: with a reset hook psycopg_pool hands every returned connection
        to a worker thread, and the next checkout waits for it.)
        """
        with self.pool.connection() as conn:
            if self._database_id is None:
                self._identify(conn)
            try:
                yield conn
            finally:
                self._returned_at[id(conn)] = time.monotonic()

    def _identify(self, conn: psycopg.Connection[dict[str, Any]]) -> None:
        """Read the database's identity (adapters/postgres/identity.py) on a
        connection about to be used.

        Once per process: on the first connection, before any transaction holds
        one, so ``database_id`` never needs a second connection from the pool
        (a pool of one would wait for itself).  A database without the table
        (not migrated yet) leaves it unknown: ``database_id`` says so."""
        self._database_id = read_identity(conn, self._begin("", None))

    def database_id(self) -> str:
        """The database's identity as 32 hex digits, read once per process."""
        if self._database_id is None:
            with self.connection():
                pass  # the first connection reads it (``_identify``)
        if self._database_id is None:
            raise DependencyUnavailable(
                "The database is not migrated (no database_identity); retry shortly.",
                retry_after_s=2,
            )
        return self._database_id

    def _check_if_idle(self, conn: psycopg.Connection[Any]) -> None:
        """Pool ``check`` hook: ping only connections idle for a while.

        A connection used a moment ago is almost surely alive, and pinging it
        on every checkout would cost a round trip per request; one that sat
        idle (a frozen Lambda environment, a proxy idle timeout) is pinged, and
        the pool replaces it if the ping fails.
        """
        idle_since = self._returned_at.get(id(conn))
        if idle_since is None or time.monotonic() - idle_since > self.IDLE_CHECK_S:
            ConnectionPool.check_connection(conn)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.close()
            self._pool = None

    # -- units of work -----------------------------------------------------------
    @contextmanager
    def connection(self) -> Iterator[psycopg.Connection[dict[str, Any]]]:
        try:
            with self._checkout() as conn:
                yield conn
        except _UNAVAILABLE as exc:
            raise DependencyUnavailable(
                "The database is unavailable; retry shortly.", retry_after_s=2
            ) from exc

    def _settings(self, org: str) -> str:
        """BEGIN and the tenant settings of ``org`` as SQL text, rendered once per org
        and kept (for up to ``_BEGIN_CACHE`` orgs): every transaction and point read
        starts with it, and composing it anew cost each of them some 20-40 us."""
        text = self._begin_text.get(org)
        if text is None:
            notify = ", set_config('docs.notify', 'on', true)" if self._notify else ""
            text = (
                sql.SQL(
                    "BEGIN; SELECT set_config('role', 'docs_app', true), "
                    "set_config('app.org', {}, true), set_config('statement_timeout', {}, true)"
                    + notify
                )
                .format(sql.Literal(org), sql.Literal(str(self.settings.db_statement_timeout_ms)))
                .as_string(None)
            )
            if len(self._begin_text) >= _BEGIN_CACHE:
                self._begin_text.clear()
            self._begin_text[org] = text
        return text

    def _begin_sql(self, org: str, prefetch: str | None) -> str:
        """``_settings`` and (optionally) the point read of ``prefetch``: one
        simple-protocol query, one round trip.  Values are quoted literals."""
        begin = self._settings(org)
        if prefetch is None:
            return begin
        return (
            f"{begin}; SELECT {DOC_COLUMNS} FROM documents WHERE org = "
            f"{sql.Literal(org).as_string(None)} AND id = {sql.Literal(prefetch).as_string(None)}"
        )

    def _begin(self, org: str, prefetch: str | None) -> sql.Composable:
        """``_begin_sql`` as a composable, for callers that compose more around it."""
        return sql.SQL(self._begin_sql(org, prefetch))

    @contextmanager
    def transaction(
        self, org: str, *, prefetch: str | None = None
    ) -> Iterator[PostgresTransaction]:
        """One tenant-scoped transaction (``_transaction``), an X-Ray subsegment
        ``postgres.transaction`` around it when tracing is on (no SQL in it)."""
        with (
            subsegment("postgres.transaction", org=org, doc_id=prefetch),
            self._transaction(org, prefetch=prefetch) as tx,
        ):
            yield tx

    @contextmanager
    def _transaction(
        self, org: str, *, prefetch: str | None = None
    ) -> Iterator[PostgresTransaction]:
        """One tenant-scoped transaction; classifies failures for the retry policy.

        ``prefetch`` names a document the caller will read first: it travels
        with BEGIN.  Failures that prove nothing was committed become
        ``TransientDatabaseError`` (retried); a connection lost *during* COMMIT
        has an unknown outcome and is a plain 503, never retried blindly.
        """
        body_done = False
        tx: PostgresTransaction | None = None
        try:
            with self._checkout() as conn:
                cur = conn.cursor(row_factory=class_row(Document))
                cur.execute(self._begin_sql(org, prefetch))
                tx = PostgresTransaction(conn, org, lambda: self._begin(org, None))
                if prefetch is not None:
                    tx.prefetched[prefetch] = after_begin(cur)
                try:
                    yield tx
                except BaseException:
                    if not conn.broken and not tx.committed:
                        conn.execute("ROLLBACK")
                    raise
                body_done = True
                if not tx.committed:
                    conn.execute("COMMIT")
        except _ROLLED_BACK as exc:
            raise TransientDatabaseError("The database asked us to retry.") from exc
        except psycopg.errors.QueryCanceled as exc:
            raise DependencyUnavailable("The database is overloaded; retry shortly.") from exc
        except _UNAVAILABLE as exc:
            if body_done or (tx is not None and tx.committing):
                raise DependencyUnavailable(
                    "The database connection was lost while committing; read before retrying.",
                    retry_after_s=2,
                ) from exc
            raise TransientDatabaseError(
                "The database is unavailable; retry shortly.", retry_after_s=2
            ) from exc

    def read_document(self, org: str, doc_id: str) -> Document | None:
        """A point read in one round trip (BEGIN, settings, SELECT, COMMIT together)."""
        query = self._begin_sql(org, doc_id) + "; COMMIT"
        try:
            with subsegment("postgres.read", org=org, doc_id=doc_id), self._checkout() as conn:
                return after_begin(conn.cursor(row_factory=class_row(Document)).execute(query))
        except _UNAVAILABLE as exc:  # a read is always safe to retry
            raise TransientDatabaseError(
                "The database is unavailable; retry shortly.", retry_after_s=2
            ) from exc

    def readable_ids(
        self, org: str, viewer: Viewer, doc_ids: Iterable[str], *, deleted: bool = False
    ) -> set[str]:
        """Which of ``doc_ids`` (live documents of ``org``) ``viewer`` may read, in one
        round trip (BEGIN, settings, SELECT, COMMIT together): the real-time
        fan-out asks it for a batch of changes, search for a page of hits."""
        ids = sorted(set(doc_ids))
        if not ids:
            return set()
        query, params = readable_ids_query(org, viewer, ids, deleted=deleted)
        try:
            with subsegment("postgres.readable", org=org), self._checkout() as conn:
                cur = psycopg.ClientCursor(conn)
                select = sql.SQL(cur.mogrify(query, params))
                cur.execute(sql.Composed([self._begin(org, None), sql.SQL("; "), select,
                                          sql.SQL("; COMMIT")]))  # fmt: skip
                cur.nextset()
                cur.nextset()
                return {row["id"] for row in cur.fetchall()}
        except _UNAVAILABLE as exc:  # a read is always safe to retry
            raise TransientDatabaseError(
                "The database is unavailable; retry shortly.", retry_after_s=2
            ) from exc

    @contextmanager
    def maintenance(self) -> Iterator[psycopg.Connection[dict[str, Any]]]:
        """A transaction as ``docs_app`` with no org set: it sees no tenant row.

        Cross-org maintenance goes through the ``docs_*`` SECURITY DEFINER
        functions (ids, versions, status; never content); to read content the
        caller sets the row's org with ``tenant`` first.  BEGIN and the role
        travel together (one round trip)."""
        with subsegment("postgres.maintenance"), self.connection() as conn:
            conn.execute("BEGIN; SELECT set_config('role', 'docs_app', true)")
            try:
                yield conn
            except BaseException:
                if not conn.broken:
                    conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    def ping(self) -> None:
        with self.connection() as conn:
            conn.execute("SELECT 1").fetchone()
            conn.rollback()
