"""The cache repair queue: documents whose cache entries a writer could not fence
(stored in the table ``cache_dirty``, a name migrations keep).  Added to in the
write's own transaction (``tx.cache_repairs``);
read and cleared across orgs by the repair (ids and versions only, through the
``docs_cache_dirty*`` SECURITY DEFINER functions)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from psycopg.rows import class_row

from chalicelib.domain.cache import CacheRepair

if TYPE_CHECKING:
    from chalicelib.adapters.postgres.protocols import Database, TenantTransaction


class PostgresCacheRepairs:
    """Implements ``CacheRepairs``: the repair queue, added to in the write's transaction."""

    def __init__(self, tx: TenantTransaction) -> None:
        self.tx = tx

    def add(self, doc_id: str, version: int) -> None:
        self.tx.conn.execute(
            "INSERT INTO cache_dirty (org, doc_id, version) VALUES (%s, %s, %s) "
            "ON CONFLICT (org, doc_id) DO UPDATE SET version = GREATEST(cache_dirty.version, "
            "EXCLUDED.version), created_at = now()",
            (self.tx.org, doc_id, version),
        )


class PostgresCacheRepairQueue:
    """Implements ``CacheRepairQueue``: the documents whose cache entries writers
    could not fence, across orgs (ids and versions only, through the
    ``docs_cache_dirty*`` SECURITY DEFINER functions)."""

    def __init__(self, uow: Database) -> None:
        self.uow = uow

    def pending(self, limit: int) -> list[CacheRepair]:
        with self.uow.maintenance() as conn:
            cur = conn.cursor(row_factory=class_row(CacheRepair))
            return cur.execute(
                "SELECT org, doc_id, version FROM docs_cache_dirty(%s)", (limit,)
            ).fetchall()

    def clear(self, items: list[CacheRepair]) -> None:
        with self.uow.maintenance() as conn:
            conn.execute(
                "SELECT docs_cache_clear_dirty(%s::text[], %s::text[], %s::bigint[])",
                ([i.org for i in items], [i.doc_id for i in items], [i.version for i in items]),
            )
