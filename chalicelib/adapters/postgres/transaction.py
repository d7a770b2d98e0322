"""One open tenant-scoped transaction, and the repositories that work on it."""

from __future__ import annotations

from collections.abc import Callable
from functools import cached_property
from typing import Any, TypeVar

import psycopg
from psycopg import sql
from psycopg.rows import RowFactory

from chalicelib.adapters.postgres.access import PostgresGrants
from chalicelib.adapters.postgres.cache_repair import PostgresCacheRepairs
from chalicelib.adapters.postgres.changes import PostgresChangeFeed
from chalicelib.adapters.postgres.content import PostgresUploads
from chalicelib.adapters.postgres.documents import PostgresDocuments
from chalicelib.domain.model import Document

T = TypeVar("T")


def after_begin(cur: psycopg.Cursor[T]) -> T | None:
    """The row of the SELECT in a multi-statement result (BEGIN; settings; SELECT)."""
    cur.nextset()  # past BEGIN's (empty) result
    cur.nextset()  # past the settings row
    return cur.fetchone()


class PostgresTransaction:
    """Implements ``Transaction``: one open tenant-scoped transaction, and the
    repositories that work on it (created on first use)."""

    def __init__(
        self,
        conn: psycopg.Connection[dict[str, Any]],
        org: str,
        begin: Callable[[], sql.Composable] | None = None,
    ) -> None:
        self.conn = conn
        self.org = org
        self.begin = begin  # BEGIN + tenant settings, to read again after COMMIT
        self.prefetched: dict[str, Document | None] = {}  # read together with BEGIN
        self.committing = False  # a statement carrying COMMIT was sent: outcome unknown
        self.committed = False  # ... and it came back: the transaction is over

    @cached_property
    def documents(self) -> PostgresDocuments:
        return PostgresDocuments(self)

    @cached_property
    def uploads(self) -> PostgresUploads:
        return PostgresUploads(self)

    @cached_property
    def change_feed(self) -> PostgresChangeFeed:
        return PostgresChangeFeed(self)

    @cached_property
    def cache_repairs(self) -> PostgresCacheRepairs:
        return PostgresCacheRepairs(self)

    @cached_property
    def grants(self) -> PostgresGrants:
        return PostgresGrants(self)

    def fetchone(self, rows: RowFactory[T], query: str, params: tuple[Any, ...]) -> T | None:
        """One row; after the transaction's COMMIT went out with a write (a lost
        race: the caller reads who won) in a new tenant-scoped transaction sent
        in the same single round trip: outside one the login can read nothing."""
        if not self.committed:
            return self.conn.cursor(row_factory=rows).execute(query, params).fetchone()
        return after_begin(self._read_after_commit(rows, query, params))

    def fetchall(self, rows: RowFactory[T], query: str, params: tuple[Any, ...]) -> list[T]:
        """Every row; like ``fetchone`` after the transaction's COMMIT went out."""
        if not self.committed:
            return self.conn.cursor(row_factory=rows).execute(query, params).fetchall()
        cur = self._read_after_commit(rows, query, params)
        cur.nextset()  # past BEGIN's (empty) result
        cur.nextset()  # past the settings row
        return cur.fetchall()

    def _read_after_commit(
        self, rows: RowFactory[T], query: str, params: tuple[Any, ...]
    ) -> psycopg.Cursor[T]:
        if self.begin is None:
            raise RuntimeError("this transaction is over")
        cur = psycopg.ClientCursor(self.conn, row_factory=rows)
        read = sql.SQL(cur.mogrify(query, params))
        cur.execute(sql.Composed([self.begin(), sql.SQL("; "), read, sql.SQL("; COMMIT")]))
        return cur
