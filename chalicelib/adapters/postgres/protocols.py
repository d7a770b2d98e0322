"""The transaction and the database as the repositories and stores see them.

Repositories work on an open tenant-scoped transaction and stores open their
own; both depend on these protocols rather than on ``PostgresTransaction`` and
``PostgresUnitOfWork``, which import the repositories: so no import circle,
type-only imports included (tests/unit/test_import_cycles.py).
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Any, Protocol, TypeVar

import psycopg
from psycopg.rows import RowFactory

from chalicelib.domain.model import Document

T = TypeVar("T")


class TenantTransaction(Protocol):
    """One open transaction of one org (``PostgresTransaction``)."""

    conn: psycopg.Connection[dict[str, Any]]
    org: str
    prefetched: dict[str, Document | None]  # read together with BEGIN
    committing: bool  # a statement carrying COMMIT was sent: outcome unknown
    committed: bool  # ... and it came back: the transaction is over

    def fetchone(self, rows: RowFactory[T], query: str, params: tuple[Any, ...]) -> T | None:
        """One row, also after the transaction's COMMIT went out with a write."""

    def fetchall(self, rows: RowFactory[T], query: str, params: tuple[Any, ...]) -> list[T]:
        """Every row, also after the transaction's COMMIT went out with a write."""


class Database(Protocol):
    """Where stores open their transactions (``PostgresUnitOfWork``)."""

    def transaction(
        self, org: str, *, prefetch: str | None = None
    ) -> AbstractContextManager[TenantTransaction]:
        """One tenant-scoped transaction; commits on clean exit."""

    def maintenance(self) -> AbstractContextManager[psycopg.Connection[dict[str, Any]]]:
        """One cross-org maintenance transaction (``docs_*`` functions only)."""

    def connection(self) -> AbstractContextManager[psycopg.Connection[dict[str, Any]]]:
        """A pooled connection, outside any transaction."""
