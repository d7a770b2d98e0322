"""The outbox as a stream: claims for the search sync, the changes feed, lag.

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

The sync and reindex are cross-tenant maintenance: they run without the
``docs_app`` role.  The changes feed is tenant-scoped and runs in the tenant's
transaction (row-level security applies).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import psycopg

from chalicelib.adapters.postgres import PostgresUnitOfWork
from chalicelib.domain.errors import Gone
from chalicelib.domain.search import FeedCursor

_LOCK_SPACE = 0x73796E63  # "sync": advisory lock keys are hashed into their own space
_DOC_STATE = (
    "SELECT d.org, d.id, d.title, d.body, d.tags, d.owner, d.version, d.created_at, "
    "d.updated_at, d.deleted_at, d.content, (SELECT t.text FROM document_content_text t "
    "WHERE t.org = d.org AND t.doc_id = d.id AND t.version <= d.version "
    "ORDER BY t.version DESC LIMIT 1) AS content_text FROM documents d "
)


@dataclass(frozen=True)
class OutboxRow:
    seq: int
    org: str
    doc_id: str
    version: int
    op: str
    attempts: int
    created_at: datetime

    @property
    def key(self) -> tuple[str, str]:
        return (self.org, self.doc_id)


@dataclass
class Claim:
    """One claimed batch, inside its open transaction."""

    conn: psycopg.Connection[dict[str, Any]]
    rows: list[OutboxRow]  # rows of the documents this consumer locked
    skipped: int  # rows left for the consumer that holds their document
    states: dict[tuple[str, str], dict[str, Any] | None] = field(default_factory=dict)
    building: list[str] = field(default_factory=list)  # indexes a reindex is building

    def done(self, rows: list[OutboxRow]) -> None:
        if rows:
            self.conn.execute(
                "UPDATE outbox SET processed_at = now(), last_error = NULL WHERE seq = ANY(%s)",
                ([r.seq for r in rows],),
            )

    def retry(
        self, rows: list[OutboxRow], reason: str, delays: list[float], *, counted: bool = True
    ) -> None:
        """Back off; ``counted=False`` for transient refusals (429/5xx of one item),
        which never push a row towards the dead-letter table."""
        for row, delay in zip(rows, delays, strict=True):
            self.conn.execute(
                "UPDATE outbox SET attempts = attempts + %s, last_error = %s, "
                "next_attempt_at = now() + make_interval(secs => %s) WHERE seq = %s",
                (1 if counted else 0, reason[:2000], delay, row.seq),
            )

    def dead_letter(self, rows: list[OutboxRow], reason: str) -> None:
        for row in rows:
            self.conn.execute(
                "INSERT INTO search_dead_letters (seq, org, doc_id, version, op, attempts, "
                "reason) VALUES (%s, %s, %s, %s, %s, %s, %s) ON CONFLICT (seq) DO UPDATE "
                "SET attempts = EXCLUDED.attempts, reason = EXCLUDED.reason, failed_at = now(), "
                "requeued_at = NULL",
                (
                    row.seq,
                    row.org,
                    row.doc_id,
                    row.version,
                    row.op,
                    row.attempts + 1,
                    reason[:2000],
                ),
            )
        if rows:
            self.conn.execute(
                "UPDATE outbox SET processed_at = now(), attempts = attempts + 1, "
                "last_error = %s WHERE seq = ANY(%s)",
                (reason[:2000], [r.seq for r in rows]),
            )


class PostgresOutbox:
    def __init__(self, uow: PostgresUnitOfWork, alias: str) -> None:
        self.uow = uow
        self.alias = alias

    # -- the sync ------------------------------------------------------------------
    @contextmanager
    def claim(self, limit: int, *, only: tuple[str, str] | None = None) -> Iterator[Claim]:
        """Claim up to ``limit`` due rows (all of one document with ``only``);
        commits what the caller marked when the block exits cleanly."""
        where = "processed_at IS NULL AND next_attempt_at <= now()"
        params: list[Any] = []
        if only is not None:
            where += " AND org = %s AND doc_id = %s"
            params += list(only)
        with self.uow.connection() as conn, conn.transaction():
            rows = [
                OutboxRow(**r)
                for r in conn.execute(
                    "SELECT seq, org, doc_id, version, op, attempts, created_at FROM outbox "
                    f"WHERE {where} ORDER BY seq LIMIT %s FOR UPDATE SKIP LOCKED",
                    [*params, limit],
                ).fetchall()
            ]
            locked = self._lock_documents(conn, {r.key for r in rows})
            mine = [r for r in rows if r.key in locked]
            claim = Claim(conn, mine, skipped=len(rows) - len(mine))
            claim.states = self._states(conn, locked)
            claim.building = self._building(conn)  # read after the claim: see reindex
            yield claim

    @contextmanager
    def lock_documents(self, keys: set[tuple[str, str]]) -> Iterator[Claim]:
        """Lock documents (waiting for a consumer that holds one) and read their
        state: the reindex catch-up and backfill repairs use it."""
        with self.uow.connection() as conn, conn.transaction():
            for org, doc_id in sorted(keys):
                conn.execute(
                    "SELECT pg_advisory_xact_lock(%s, hashtext(%s))",
                    (_LOCK_SPACE, f"{org}:{doc_id}"),
                )
            claim = Claim(conn, [], skipped=0)
            claim.states = self._states(conn, keys)
            claim.building = self._building(conn)
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
            "WHERE pg_try_advisory_xact_lock(%s, hashtext(k.org || ':' || k.id))",
            ([k[0] for k in ordered], [k[1] for k in ordered], _LOCK_SPACE),
        ).fetchall()
        return {(r["org"], r["id"]) for r in got}

    @staticmethod
    def _states(
        conn: psycopg.Connection[dict[str, Any]], keys: set[tuple[str, str]]
    ) -> dict[tuple[str, str], dict[str, Any] | None]:
        states: dict[tuple[str, str], dict[str, Any] | None] = dict.fromkeys(keys)
        if keys:
            ordered = sorted(keys)
            for row in conn.execute(
                _DOC_STATE + "JOIN unnest(%s::text[], %s::text[]) AS k(org, id) "
                "ON d.org = k.org AND d.id = k.id",
                ([k[0] for k in ordered], [k[1] for k in ordered]),
            ).fetchall():
                states[(row["org"], row["id"])] = row
        return states

    def _building(self, conn: psycopg.Connection[dict[str, Any]]) -> list[str]:
        return [
            r["name"]
            for r in conn.execute(
                "SELECT name FROM search_indexes WHERE alias = %s AND state = 'building'",
                (self.alias,),
            ).fetchall()
        ]

    # -- reindex ------------------------------------------------------------------
    def building_indexes(self) -> list[str]:
        with self.uow.connection() as conn, conn.transaction():
            return self._building(conn)

    def register_building(self, name: str) -> None:
        with self.uow.connection() as conn, conn.transaction():
            conn.execute(
                "INSERT INTO search_indexes (name, alias, state) VALUES (%s, %s, 'building') "
                "ON CONFLICT (name) DO UPDATE SET state = 'building', drop_after = NULL, "
                "from_txid = pg_snapshot_xmin(pg_current_snapshot())",
                (name, self.alias),
            )

    def documents_page(self, after: tuple[str, str] | None, limit: int) -> list[dict[str, Any]]:
        """Live documents in (org, id) order, with their content text (backfill)."""
        where, params = "WHERE d.deleted_at IS NULL", []
        if after is not None:
            where += " AND (d.org, d.id) > (%s, %s)"
            params = list(after)
        with self.uow.connection() as conn, conn.transaction():
            return conn.execute(
                _DOC_STATE + f"{where} ORDER BY d.org, d.id LIMIT %s", [*params, limit]
            ).fetchall()

    def count_live_documents(self) -> int:
        with self.uow.connection() as conn, conn.transaction():
            row = conn.execute("SELECT count(*) AS n FROM documents WHERE deleted_at IS NULL")
            return int(row.fetchone()["n"])  # type: ignore[index]

    def changed_since_registration(self, name: str) -> dict[tuple[str, str], int]:
        """Documents (and their newest outbox version) of every transaction that
        could have committed after ``name`` was registered."""
        with self.uow.connection() as conn, conn.transaction():
            rows = conn.execute(
                "SELECT o.org, o.doc_id, max(o.version) AS version FROM outbox o "
                "JOIN search_indexes s ON s.name = %s WHERE o.txid >= s.from_txid "
                "GROUP BY o.org, o.doc_id",
                (name,),
            ).fetchall()
        return {(r["org"], r["doc_id"]): int(r["version"]) for r in rows}

    def retire(self, new: str, old: str | None, grace: timedelta) -> None:
        with self.uow.connection() as conn, conn.transaction():
            conn.execute("DELETE FROM search_indexes WHERE name = %s", (new,))
            if old is not None:
                conn.execute(
                    "INSERT INTO search_indexes (name, alias, state, drop_after) "
                    "VALUES (%s, %s, 'retired', now() + %s) ON CONFLICT (name) DO UPDATE "
                    "SET state = 'retired', drop_after = EXCLUDED.drop_after",
                    (old, self.alias, grace),
                )

    def abandon(self, name: str) -> None:
        with self.uow.connection() as conn, conn.transaction():
            conn.execute("DELETE FROM search_indexes WHERE name = %s", (name,))

    def expired_indexes(self) -> list[str]:
        with self.uow.connection() as conn, conn.transaction():
            rows = conn.execute(
                "SELECT name FROM search_indexes WHERE alias = %s AND state = 'retired' "
                "AND drop_after <= now()",
                (self.alias,),
            ).fetchall()
        return [r["name"] for r in rows]

    # -- observability ------------------------------------------------------------------
    def stats(self) -> dict[str, Any]:
        """Lag (seconds since the oldest unsynced row committed), backlog, dead letters."""
        with self.uow.connection() as conn, conn.transaction():
            row = conn.execute(
                "SELECT EXTRACT(EPOCH FROM now() - min(created_at))::float8 AS lag, "
                "count(*) AS backlog FROM outbox WHERE processed_at IS NULL"
            ).fetchone()
            dead = conn.execute(
                "SELECT count(*) AS n FROM search_dead_letters WHERE requeued_at IS NULL"
            ).fetchone()
        assert row is not None
        assert dead is not None
        return {
            "lag_s": max(0.0, float(row["lag"] or 0.0)),
            "backlog": int(row["backlog"]),
            "dead_letters": int(dead["n"]),
        }

    def requeue_dead_letters(self, org: str | None = None) -> int:
        """Put dead-lettered rows back in the stream (after fixing their cause)."""
        with self.uow.connection() as conn, conn.transaction():
            rows = conn.execute(
                "UPDATE search_dead_letters SET requeued_at = now() WHERE requeued_at IS NULL "
                "AND (%s::text IS NULL OR org = %s) RETURNING seq",
                (org, org),
            ).fetchall()
            seqs = [r["seq"] for r in rows]
            conn.execute(
                "UPDATE outbox SET processed_at = NULL, attempts = 0, next_attempt_at = now() "
                "WHERE seq = ANY(%s)",
                (seqs,),
            )
        return len(seqs)

    def wake_all(self) -> int:
        """Make every pending row due now (after an outage, or from the CLI)."""
        with self.uow.connection() as conn, conn.transaction():
            cur = conn.execute(
                "UPDATE outbox SET next_attempt_at = now() "
                "WHERE processed_at IS NULL AND next_attempt_at > now()"
            )
            return cur.rowcount

    # -- retention ------------------------------------------------------------------
    def prune(self, older_than: timedelta, *, batch: int = 5000, max_batches: int = 20) -> int:
        """Delete processed rows created before ``now() - older_than``, in batches,
        and move the pruned-feed watermark past them.  Pending rows are never
        deleted, however old."""
        deleted = 0
        for _ in range(max_batches):
            with self.uow.connection() as conn, conn.transaction():
                row = conn.execute(
                    "WITH gone AS (DELETE FROM outbox WHERE seq IN (SELECT seq FROM outbox "
                    "WHERE processed_at IS NOT NULL AND created_at < now() - %s "
                    "ORDER BY seq LIMIT %s FOR UPDATE SKIP LOCKED) RETURNING txid, seq), "
                    "top AS (SELECT txid, seq FROM gone ORDER BY txid DESC, seq DESC LIMIT 1), "
                    "mark AS (INSERT INTO outbox_pruned (id, txid, seq) SELECT 1, txid, seq "
                    "FROM top ON CONFLICT (id) DO UPDATE SET txid = EXCLUDED.txid, "
                    "seq = EXCLUDED.seq, at = now() WHERE (outbox_pruned.txid, outbox_pruned.seq)"
                    " < (EXCLUDED.txid, EXCLUDED.seq)) SELECT count(*) AS n FROM gone",
                    (older_than, batch),
                ).fetchone()
            n = int(row["n"]) if row else 0
            deleted += n
            if n < batch:
                break
        return deleted

    # -- the changes feed (tenant-scoped) ---------------------------------------------
    def changes(
        self, org: str, since: FeedCursor | None, limit: int
    ) -> tuple[list[dict[str, Any]], FeedCursor]:
        """Rows after ``since`` (None: from now on) of transactions that finished
        before every running one, in (txid, seq) order, and the next cursor."""
        with self.uow.transaction(org) as repo:
            horizon = int(
                repo.conn.execute(
                    "SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint AS x"
                ).fetchone()["x"]  # type: ignore[index]
            )
            if since is None:
                return [], FeedCursor(horizon, 0)
            pruned = repo.conn.execute(
                "SELECT txid::text::bigint AS txid, seq FROM outbox_pruned WHERE id = 1"
            ).fetchone()
            if pruned is not None and since < FeedCursor(pruned["txid"], pruned["seq"]):
                raise Gone(
                    "Changes before this cursor have been pruned: read GET /documents for a "
                    "full copy, then follow the feed from since=now.",
                )
            rows = repo.conn.execute(
                "SELECT seq, txid::text::bigint AS txid, doc_id, version, op, created_at "
                "FROM outbox WHERE org = %s AND (txid, seq) > (%s::text::xid8, %s) "
                "AND txid < %s::text::xid8 ORDER BY txid, seq LIMIT %s",
                (org, str(since.txid), since.seq, str(horizon), limit),
            ).fetchall()
        last = FeedCursor(rows[-1]["txid"], rows[-1]["seq"]) if rows else since
        if len(rows) < limit:
            # every finished row of this org after the cursor was returned: the
            # next page can start at the horizon (skipping other orgs' rows)
            last = max(last, FeedCursor(horizon, 0))
        return rows, last
