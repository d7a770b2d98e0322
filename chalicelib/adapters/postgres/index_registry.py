"""The search indexes' registry and the reindex's reads, in PostgreSQL (migration
0006): which indexes a reindex is building behind the alias, which are retired,
and the backfill's pages of live documents (cross-org maintenance: ids from
``docs_*`` SECURITY DEFINER functions, content under each document's org)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import psycopg

from chalicelib.adapters.postgres.document_states import document_states
from chalicelib.domain.outbox import DocumentState

if TYPE_CHECKING:
    from chalicelib.adapters.postgres.protocols import Database

_REINDEX_LOCK = 0x72656978  # "reix"


def building_indexes(conn: psycopg.Connection[dict[str, Any]], alias: str) -> list[str]:
    """Indexes a reindex is building behind ``alias`` (in ``conn``'s transaction)."""
    return [
        r["name"]
        for r in conn.execute(
            "SELECT name FROM docs_search_building(%s) AS name", (alias,)
        ).fetchall()
    ]


class PostgresIndexRegistry:
    """Implements ``IndexRegistry``: the reindex's side, cross-org maintenance."""

    def __init__(self, uow: Database, alias: str) -> None:
        self.uow = uow
        self.alias = alias

    @contextmanager
    def exclusive_reindex(self) -> Iterator[bool]:
        """A transaction-level advisory lock held for the whole reindex (one at a time)."""
        with self.uow.connection() as guard, guard.transaction():
            got = guard.execute("SELECT pg_try_advisory_xact_lock(%s) AS got", (_REINDEX_LOCK,))
            row = got.fetchone()
            yield bool(row and row["got"])

    def building_indexes(self) -> list[str]:
        with self.uow.maintenance() as conn:
            return building_indexes(conn, self.alias)

    def register_building(self, name: str) -> None:
        with self.uow.maintenance() as conn:
            conn.execute("SELECT docs_search_register(%s, %s)", (name, self.alias))

    def documents_page(self, after: tuple[str, str] | None, limit: int) -> list[DocumentState]:
        """Live documents in (org, id) order, with their content text (backfill):
        ids from ``docs_live_document_ids``, content read under each org."""
        after_org, after_id = after if after is not None else (None, None)
        with self.uow.maintenance() as conn:
            keys = [
                (r["org"], r["id"])
                for r in conn.execute(
                    "SELECT org, id FROM docs_live_document_ids(%s, %s, %s)",
                    (limit, after_org, after_id),
                ).fetchall()
            ]
            states = document_states(conn, set(keys))
        page = [states[k] for k in keys]
        return [s for s in page if s is not None and s["deleted_at"] is None]

    def count_live_documents(self) -> int:
        with self.uow.maintenance() as conn:
            row = conn.execute("SELECT docs_count_live_documents() AS n").fetchone()
        return int(row["n"]) if row else 0

    def changed_since_registration(self, name: str) -> dict[tuple[str, str], int]:
        """Documents (and their newest outbox version) of every transaction that
        could have committed after ``name`` was registered."""
        with self.uow.maintenance() as conn:
            rows = conn.execute(
                "SELECT org, doc_id, version FROM docs_outbox_changed_since(%s)", (name,)
            ).fetchall()
        return {(r["org"], r["doc_id"]): int(r["version"]) for r in rows}

    def retire(self, new: str, old: str | None, grace: timedelta) -> None:
        with self.uow.maintenance() as conn:
            conn.execute("SELECT docs_search_retire(%s, %s, %s, %s)", (new, old, self.alias, grace))

    def abandon(self, name: str) -> None:
        with self.uow.maintenance() as conn:
            conn.execute("SELECT docs_search_abandon(%s)", (name,))

    def expired_indexes(self) -> list[str]:
        with self.uow.maintenance() as conn:
            rows = conn.execute(
                "SELECT name FROM docs_search_expired(%s) AS name", (self.alias,)
            ).fetchall()
        return [r["name"] for r in rows]
