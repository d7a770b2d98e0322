"""The re-encryption of PII fields in PostgreSQL, after a key rotation
(migration 0010_lifecycle.sql).

The cross-org list of ids goes through the ``docs_document_ids`` SECURITY
DEFINER function; each document is rewritten in a tenant transaction of its
org (``uow.transaction``), where row-level security applies.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from psycopg.types.json import Jsonb

if TYPE_CHECKING:
    from chalicelib.adapters.postgres.protocols import Database


class PostgresPiiReencryptionStore:
    """Implements ``PiiReencryptionStore``."""

    def __init__(self, uow: Database) -> None:
        self.uow = uow

    def document_ids(self, after: tuple[str, str] | None, limit: int) -> list[tuple[str, str]]:
        after_org, after_id = after if after is not None else (None, None)
        with self.uow.maintenance() as conn:
            rows = conn.execute(
                "SELECT org, id FROM docs_document_ids(%s, %s, %s)", (limit, after_org, after_id)
            ).fetchall()
        return [(r["org"], r["id"]) for r in rows]

    def rewrite_metadata(
        self, org: str, doc_id: str, rewrite: Callable[[dict[str, Any]], dict[str, Any] | None]
    ) -> int:
        """In place, in one tenant transaction, with the row locked: the values stay
        the same (only their ciphertext changes), so no version, outbox or audit row
        is written and the ETag does not move."""
        changed = 0
        with self.uow.transaction(org) as tx:
            conn = tx.conn
            row = conn.execute(
                "SELECT metadata FROM documents WHERE org = %s AND id = %s FOR UPDATE",
                (org, doc_id),
            ).fetchone()
            if row is None:
                return 0
            new = rewrite(row["metadata"])
            if new is not None:
                conn.execute(
                    "UPDATE documents SET metadata = %s WHERE org = %s AND id = %s",
                    (Jsonb(new), org, doc_id),
                )
                changed += 1
            for version in conn.execute(
                "SELECT version, metadata FROM document_versions WHERE org = %s AND id = %s "
                "ORDER BY version",
                (org, doc_id),
            ).fetchall():
                new = rewrite(version["metadata"])
                if new is not None:
                    conn.execute(
                        "UPDATE document_versions SET metadata = %s "
                        "WHERE org = %s AND id = %s AND version = %s",
                        (Jsonb(new), org, doc_id, version["version"]),
                    )
                    changed += 1
        return changed
