"""Document permissions in PostgreSQL: grants (``tx.grants``) and the read rule as SQL.

The read rule of domain/access.py, for queries that filter many documents at
once (lists, the changes feed, ``readable_ids``): a non-admin viewer reads a
document open to the org, one it owns, or one it holds a grant on.  The org
role was checked before (at least ``reader``); row-level security keeps all of
it inside the org.  Grants are read with the document itself in the same
statement (``GRANTS_COLUMN``), so no read costs a round trip more.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from psycopg.rows import class_row

from chalicelib.domain.access import Grant
from chalicelib.domain.viewer import Viewer

if TYPE_CHECKING:
    from chalicelib.adapters.postgres.protocols import TenantTransaction

# a documents row's grants as {grantee: role}, for a private document only (an open one
# is read and written by the role rule alone, so point reads of it skip the subplan):
# a primary-key range scan.  No braces in the SQL: point reads format it into a
# psycopg sql.SQL template.
GRANTS_COLUMN = (
    "CASE WHEN documents.visibility = 'private' THEN (SELECT coalesce(jsonb_object_agg("
    "g.grantee, g.role), jsonb_build_object()) FROM document_grants g "
    "WHERE g.org = documents.org AND g.doc_id = documents.id) ELSE jsonb_build_object() END "
    "AS grants"
)


def readable_clause(viewer: Viewer | None, table: str = "documents") -> tuple[str, list[Any]]:
    """A WHERE condition (and its parameters) true for rows of ``table`` (the
    documents table or an alias of it) that ``viewer`` may read."""
    if viewer is None or viewer.admin:
        return "TRUE", []
    return (
        f"({table}.visibility = 'org' OR {table}.owner = %s OR EXISTS (SELECT 1 FROM "
        f"document_grants g WHERE g.org = {table}.org AND g.doc_id = {table}.id "
        "AND g.grantee = %s))",
        [viewer.user, viewer.user],
    )


def readable_ids_query(
    org: str, viewer: Viewer, doc_ids: Iterable[str], *, deleted: bool = False
) -> tuple[str, list[Any]]:
    """The one statement of ``UnitOfWork.readable_ids``: ids of live documents of ``org``
    (with ``deleted``: soft-deleted ones too)."""
    clause, params = readable_clause(viewer)
    live = "" if deleted else "AND deleted_at IS NULL "
    return (
        f"SELECT id FROM documents WHERE org = %s AND id = ANY(%s) {live}AND {clause}",
        [org, list(doc_ids), *params],
    )


class PostgresGrants:
    """Implements ``GrantRepository`` on an open transaction."""

    def __init__(self, tx: TenantTransaction) -> None:
        self.tx = tx
        self.org = tx.org

    def list(self, doc_id: str) -> list[Grant]:
        cur = self.tx.conn.cursor(row_factory=class_row(Grant))
        return cur.execute(
            "SELECT grantee AS user, role, granted_by, granted_at FROM document_grants "
            "WHERE org = %s AND doc_id = %s ORDER BY grantee",
            (self.org, doc_id),
        ).fetchall()

    def put(self, doc_id: str, user: str, role: str, granted_by: str) -> None:
        self.tx.conn.execute(
            "INSERT INTO document_grants (org, doc_id, grantee, role, granted_by) "
            "VALUES (%s, %s, %s, %s, %s) ON CONFLICT (org, doc_id, grantee) DO UPDATE "
            "SET role = EXCLUDED.role, granted_by = EXCLUDED.granted_by, granted_at = now()",
            (self.org, doc_id, user, role, granted_by),
        )

    def delete(self, doc_id: str, user: str) -> bool:
        cur = self.tx.conn.execute(
            "DELETE FROM document_grants WHERE org = %s AND doc_id = %s AND grantee = %s",
            (self.org, doc_id, user),
        )
        return cur.rowcount > 0

    def clear(self, doc_id: str) -> None:
        self.tx.conn.execute(
            "DELETE FROM document_grants WHERE org = %s AND doc_id = %s", (self.org, doc_id)
        )
