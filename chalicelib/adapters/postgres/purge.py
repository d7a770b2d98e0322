"""The purge's database side in PostgreSQL (migration 0010_lifecycle.sql).

Cross-org steps go through ``docs_*`` SECURITY DEFINER functions that return
ids only (``docs_purge_due``, ``docs_purge_pending``); everything about one
document runs in a tenant transaction of its org (``uow.transaction``), where
row-level security applies.  The rows themselves are removed by
``docs_purge_rows``, which refuses anything but a document of the
transaction's org deleted before the cutoff: the runtime login holds no DELETE
on documents or versions.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from psycopg.types.json import Jsonb

from chalicelib.domain.purge import PurgeTask

if TYPE_CHECKING:
    from chalicelib.adapters.postgres.protocols import Database

PURGE_ACTOR = "system"
_LEASE = timedelta(minutes=5)  # a crashed run's tasks come back after this
_MAX_BACKOFF_S = 3600


class PostgresPurgeStore:
    """Implements ``PurgeStore``."""

    def __init__(self, uow: Database) -> None:
        self.uow = uow

    def due(self, cutoff: datetime, limit: int) -> list[tuple[str, str]]:
        with self.uow.maintenance() as conn:
            rows = conn.execute(
                "SELECT org, id FROM docs_purge_due(%s, %s)", (cutoff, limit)
            ).fetchall()
        return [(r["org"], r["id"]) for r in rows]

    def purge(
        self, org: str, doc_id: str, cutoff: datetime, *, request_id: str | None = None
    ) -> PurgeTask | None:
        with self.uow.transaction(org) as tx:
            conn = tx.conn
            doc = conn.execute(
                "SELECT version FROM documents WHERE org = %s AND id = %s "
                "AND deleted_at IS NOT NULL AND deleted_at < %s FOR UPDATE",
                (org, doc_id, cutoff),
            ).fetchone()
            if doc is None:
                return None  # restored, reused or purged since it was listed
            keys = [
                r["key"]
                for r in conn.execute(
                    "SELECT DISTINCT key FROM content_uploads WHERE org = %s AND doc_id = %s "
                    "ORDER BY key",
                    (org, doc_id),
                ).fetchall()
            ]
            version = int(doc["version"]) + 1  # the index deletes at a version above any held
            task = conn.execute(
                "INSERT INTO document_purges (org, doc_id, keys) VALUES (%s, %s, %s) RETURNING id",
                (org, doc_id, keys),
            ).fetchone()
            assert task is not None
            removed = conn.execute(
                "SELECT docs_purge_rows(%s, %s, %s) AS n", (org, doc_id, cutoff)
            ).fetchone()
            assert removed is not None
            assert removed["n"] >= 0
            conn.execute(
                "INSERT INTO outbox (org, doc_id, version, op) VALUES (%s, %s, %s, 'purge')",
                (org, doc_id, version),
            )
            # the index keeps that delete at this version: a later document at this id
            # counts its versions above it (migration 0011; ``PostgresDocuments.insert``)
            conn.execute(
                "INSERT INTO document_version_floors (org, doc_id, version) VALUES (%s, %s, %s) "
                "ON CONFLICT (org, doc_id) DO UPDATE SET set_at = now(), "
                "version = greatest(document_version_floors.version, excluded.version)",
                (org, doc_id, version),
            )
            # the pseudonymous record: that it happened, by whom, how much; no title,
            # no content, no personal data; the chain trigger (migration 0009) links it
            conn.execute(
                "INSERT INTO audit_log (org, actor, action, doc_id, version, prev_version, "
                "request_id, details) VALUES (%s, %s, 'purge', %s, %s, %s, %s, %s)",
                (org, PURGE_ACTOR, doc_id, version, int(doc["version"]), request_id,
                 Jsonb({"versions": int(removed["n"]), "objects": len(keys)})),
            )  # fmt: skip
        return PurgeTask(int(task["id"]), org, doc_id, keys, version=version)

    def pending(self, limit: int) -> list[PurgeTask]:
        with self.uow.maintenance() as conn:
            leased = conn.execute(
                "SELECT id, org, doc_id, attempts FROM docs_purge_pending(%s, %s)",
                (limit, _LEASE),
            ).fetchall()
        tasks = []
        for row in leased:
            with self.uow.transaction(row["org"]) as tx:
                got = tx.conn.execute(
                    "SELECT keys FROM document_purges WHERE org = %s AND id = %s",
                    (row["org"], row["id"]),
                ).fetchone()
            if got is not None:
                tasks.append(
                    PurgeTask(row["id"], row["org"], row["doc_id"], list(got["keys"]),
                              row["attempts"])
                )  # fmt: skip
        return tasks

    def finish(self, task: PurgeTask) -> None:
        with self.uow.transaction(task.org) as tx:
            tx.conn.execute(
                "DELETE FROM document_purges WHERE org = %s AND id = %s", (task.org, task.id)
            )

    def failed(self, task: PurgeTask, reason: str) -> None:
        delay = min(_MAX_BACKOFF_S, 30 * 2 ** min(task.attempts, 10))
        with self.uow.transaction(task.org) as tx:
            tx.conn.execute(
                "UPDATE document_purges SET attempts = attempts + 1, last_error = left(%s, 500), "
                "next_attempt_at = now() + make_interval(secs => %s) WHERE org = %s AND id = %s",
                (reason, delay, task.org, task.id),
            )
