"""The outbox as the real-time fan-out's stream (``RealtimeStream``), with its own
cursor (``realtime_cursors``, migration 0008), independent of the search sync.

A batch is one maintenance transaction: ``docs_realtime_claim`` locks the
consumer's cursor row (one batch at a time per consumer name; a second
consumer waits, within the statement timeout), returns the committed rows after it,
each marked safe or not (older than every running transaction), and the
cursor moves only when the block exits cleanly.  Tags
are read per org with ``app.org`` set to that org, so row-level security
applies to the only content the fan-out reads.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from psycopg.rows import class_row

from chalicelib.adapters.postgres.document_states import tenant
from chalicelib.domain.realtime import StreamBatch, StreamRow, StreamStats

if TYPE_CHECKING:
    import psycopg

    from chalicelib.adapters.postgres.protocols import Database


class PostgresRealtimeStream:
    """Implements ``RealtimeStream`` for the consumer ``name``."""

    def __init__(self, uow: Database, name: str) -> None:
        self.uow = uow
        self.name = name

    @contextmanager
    def batch(self, limit: int) -> Iterator[StreamBatch]:
        with self.uow.maintenance() as conn:
            rows = claim_rows(conn, self.name, limit)
            batch = StreamBatch(rows)
            by_org: dict[str, set[str]] = {}
            for row in rows:
                by_org.setdefault(row.org, set()).add(row.doc_id)
            for org, ids in sorted(by_org.items()):
                tenant(conn, org)
                for found in conn.execute(
                    "SELECT id, tags FROM documents WHERE org = %s AND id = ANY(%s)",
                    (org, sorted(ids)),
                ).fetchall():
                    batch.tags[(org, found["id"])] = list(found["tags"] or [])
            yield batch  # (app.org may still name the last org: advance reads no tenant row)
            if batch.advanced_to is not None:
                advance_cursor(conn, self.name, batch.advanced_to)

    def stats(self) -> StreamStats:
        with self.uow.maintenance() as conn:
            return cursor_stats(conn, self.name)


# -- every consumer with a cursor of its own (real-time, share notifications, webhooks)
def claim_rows(conn: psycopg.Connection[Any], name: str, limit: int) -> list[StreamRow]:
    """The committed outbox rows after consumer ``name``'s cursor, its row locked for
    the transaction; (txid, seq) order, so the safe ones come first."""
    return (
        conn.cursor(row_factory=class_row(StreamRow))
        .execute(
            "SELECT txid, seq, org, doc_id, version, op, created_at, safe, horizon "
            "FROM docs_realtime_claim(%s, %s)",
            (name, limit),
        )
        .fetchall()
    )


def advance_cursor(conn: psycopg.Connection[Any], name: str, to: tuple[int, int]) -> None:
    """Moves consumer ``name``'s cursor to (txid, seq), in the claim's transaction."""
    conn.execute("SELECT docs_realtime_advance(%s, %s, %s)", (name, *to))


def cursor_stats(conn: psycopg.Connection[Any], name: str) -> StreamStats:
    """Consumer ``name``'s lag (since its oldest unread row committed) and backlog."""
    row = conn.execute("SELECT lag_s, backlog FROM docs_realtime_stats(%s)", (name,)).fetchone()
    if row is None:
        return StreamStats(0.0, 0)
    return StreamStats(max(0.0, float(row["lag_s"] or 0.0)), int(row["backlog"] or 0))
