"""The outbox as the search sync's stream: claims, dead letters, lag, retention.

Elsewhere: the index registry and the reindex's reads (index_registry.py), the
changes feed (changes.py), the long-running LISTEN consumers (outbox_listener.py).

Claiming (``claim``) runs in one transaction that stays open while the batch is
indexed, so a consumer that dies mid-batch leaves nothing half-marked: its
connection drops, the transaction rolls back, the row locks vanish and the
rows are claimed again.

- ``FOR UPDATE SKIP LOCKED`` lets several consumers claim disjoint rows.
- A transaction-level advisory lock per document (``pg_try_advisory_xact_lock``)
  keeps two consumers from syncing the *same* document at once; rows of a
  document another consumer holds are left for later.  Together with reading
  the document's current row (not the outbox row's payload) this makes the
  order in which rows are processed irrelevant: whoever syncs a document
  writes its newest committed state, and external versions do the rest.
- Rows are marked processed only after OpenSearch acknowledged them.

The sync and reindex are cross-tenant maintenance, yet they run as the tenant
role ``docs_app`` like everything else (``PostgresUnitOfWork.maintenance``):
outbox rows, the index registry and live document ids come from ``docs_*``
SECURITY DEFINER functions that return ids, versions and status only (migration
0006); each document's content is then read with ``app.org`` set to its org,
so row-level security applies to every content read (document_states.py).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import psycopg
from psycopg.rows import class_row

from chalicelib.adapters.postgres.document_states import document_states
from chalicelib.adapters.postgres.index_registry import PostgresIndexRegistry, building_indexes
from chalicelib.domain.keys import join_key
from chalicelib.domain.outbox import DocumentState, OutboxRow, OutboxStats

if TYPE_CHECKING:
    pass

_LOCK_SPACE = 0x73796E63  # "sync": advisory lock keys are hashed into their own space


@dataclass
class PostgresClaim:
    """Implements ``Claim``: one claimed batch, inside its open transaction."""

    conn: psycopg.Connection[dict[str, Any]]
    rows: list[OutboxRow]  # rows of the documents this consumer locked
    skipped: int  # rows left for the consumer that holds their document
    states: dict[tuple[str, str], DocumentState | None] = field(default_factory=dict)
    building: list[str] = field(default_factory=list)  # indexes a reindex is building

    def done(self, rows: list[OutboxRow]) -> None:
        if rows:
            self.conn.execute("SELECT docs_outbox_done(%s::bigint[])", ([r.seq for r in rows],))

    def retry(
        self, rows: list[OutboxRow], reason: str, delays: list[float], *, counted: bool = True
    ) -> None:
        if len(rows) != len(delays):
            raise ValueError("one delay per row")
        if rows:
            self.conn.execute(
                "SELECT docs_outbox_retry(%s::bigint[], %s::float8[], %s, %s)",
                ([r.seq for r in rows], [float(d) for d in delays], reason[:2000], counted),
            )

    def dead_letter(self, rows: list[OutboxRow], reason: str) -> None:
        if rows:
            self.conn.execute(
                "SELECT docs_outbox_dead_letter(%s::bigint[], %s)",
                ([r.seq for r in rows], reason[:2000]),
            )


class PostgresOutbox(PostgresIndexRegistry):
    """Implements ``Outbox``: the search sync's side, cross-org maintenance (and,
    through ``PostgresIndexRegistry``, the reindex's)."""

    # -- the sync ------------------------------------------------------------------
    @contextmanager
    def claim(self, limit: int, *, only: tuple[str, str] | None = None) -> Iterator[PostgresClaim]:
        """Claim up to ``limit`` due rows (all of one document with ``only``);
        commits what the caller marked when the block exits cleanly."""
        org, doc_id = only if only is not None else (None, None)
        with self.uow.maintenance() as conn:
            rows = (
                conn.cursor(row_factory=class_row(OutboxRow))
                .execute(
                    "SELECT seq, org, doc_id, version, op, attempts, created_at "
                    "FROM docs_outbox_claim(%s, %s, %s)",
                    (limit, org, doc_id),
                )
                .fetchall()
            )
            locked = self._lock_documents(conn, {r.key for r in rows})
            mine = [r for r in rows if r.key in locked]
            claim = PostgresClaim(conn, mine, skipped=len(rows) - len(mine))
            claim.states = document_states(conn, locked)
            claim.building = building_indexes(conn, self.alias)  # read after the claim: see reindex
            yield claim

    @contextmanager
    def lock_documents(self, keys: set[tuple[str, str]]) -> Iterator[PostgresClaim]:
        """Lock documents (waiting for a consumer that holds one) and read their
        state: the reindex catch-up and backfill repairs use it."""
        with self.uow.maintenance() as conn:
            for org, doc_id in sorted(keys):
                conn.execute(
                    "SELECT pg_advisory_xact_lock(%s, hashtext(%s))",
                    (_LOCK_SPACE, join_key(org, doc_id)),
                )
            claim = PostgresClaim(conn, [], skipped=0)
            claim.states = document_states(conn, keys)
            claim.building = building_indexes(conn, self.alias)
            yield claim

    @staticmethod
    def _lock_documents(
        conn: psycopg.Connection[dict[str, Any]], keys: set[tuple[str, str]]
    ) -> set[tuple[str, str]]:
        if not keys:
            return set()
        ordered = sorted(keys)
        got = conn.execute(
            "SELECT k.org, k.id FROM unnest(%s::text[], %s::text[]) AS k(org, id) "
            "WHERE pg_try_advisory_xact_lock(%s, hashtext("
            "length(k.org) || ':' || k.org || length(k.id) || ':' || k.id))",  # = join_key
            ([k[0] for k in ordered], [k[1] for k in ordered], _LOCK_SPACE),
        ).fetchall()
        return {(r["org"], r["id"]) for r in got}

    # -- observability ------------------------------------------------------------------
    def stats(self) -> OutboxStats:
        """Lag (seconds since the oldest unsynced row committed), backlog, dead letters."""
        with self.uow.maintenance() as conn:
            row = conn.execute(
                "SELECT lag_s, backlog, dead_letters FROM docs_outbox_stats()"
            ).fetchone()
        assert row is not None
        return OutboxStats(
            lag_s=max(0.0, float(row["lag_s"] or 0.0)),
            backlog=int(row["backlog"]),
            dead_letters=int(row["dead_letters"]),
        )

    def dead_letters(self, org: str | None = None, limit: int = 1000) -> list[dict[str, Any]]:
        """Rows that failed to index and were not requeued, oldest first."""
        with self.uow.maintenance() as conn:
            return conn.execute(
                "SELECT seq, org, doc_id, version, op, attempts, reason, failed_at::text "
                "FROM docs_dead_letters(%s, %s)",
                (org, limit),
            ).fetchall()

    def requeue_dead_letters(self, org: str | None = None) -> int:
        """Put dead-lettered rows back in the stream (after fixing their cause)."""
        with self.uow.maintenance() as conn:
            row = conn.execute("SELECT docs_requeue_dead_letters(%s) AS n", (org,)).fetchone()
        return int(row["n"]) if row else 0

    def wake_all(self) -> int:
        """Make every pending row due now (after an outage, or from the CLI)."""
        with self.uow.maintenance() as conn:
            row = conn.execute("SELECT docs_outbox_wake_all() AS n").fetchone()
        return int(row["n"]) if row else 0

    # -- retention ------------------------------------------------------------------
    def prune(self, older_than: timedelta, *, batch: int = 5000, max_batches: int = 20) -> int:
        """Delete processed rows created before ``now() - older_than``, in batches,
        and move the pruned-feed watermark past them.  Pending rows are never
        deleted, however old."""
        deleted = 0
        for _ in range(max_batches):
            with self.uow.maintenance() as conn:
                row = conn.execute(
                    "SELECT docs_outbox_prune(%s, %s) AS n", (older_than, batch)
                ).fetchone()
            n = int(row["n"]) if row else 0
            deleted += n
            if n < batch:
                break
        return deleted
