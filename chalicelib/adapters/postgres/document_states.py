"""Documents' current state as the search sync reads it, across orgs: ids from
``docs_*`` SECURITY DEFINER functions, each document's content read with
``app.org`` set to its org, so row-level security applies to every content
read."""

from __future__ import annotations

from typing import Any

import psycopg

from chalicelib.domain.outbox import DocumentState

# one org's documents (app.org is set to it: row-level security applies)
_DOC_STATE = (
    "SELECT d.org, d.id, d.title, d.body, d.tags, d.owner, d.version, d.created_at, "
    "d.updated_at, d.deleted_at, d.content, d.metadata, d.visibility, ARRAY(SELECT g.grantee FROM "
    "document_grants g WHERE g.org = d.org AND g.doc_id = d.id ORDER BY g.grantee) AS grantees, "
    "(SELECT t.text FROM document_content_text t "
    "WHERE t.org = d.org AND t.doc_id = d.id AND t.version <= d.version "
    "ORDER BY t.version DESC LIMIT 1) AS content_text FROM documents d "
    "WHERE d.org = %s AND d.id = ANY(%s)"
)


def tenant(conn: psycopg.Connection[Any], org: str) -> None:
    """Scope the rest of a ``maintenance`` transaction to ``org`` (until changed)."""
    conn.execute("SELECT set_config('app.org', %s, true)", (org,))


def document_states(
    conn: psycopg.Connection[dict[str, Any]], keys: set[tuple[str, str]]
) -> dict[tuple[str, str], DocumentState | None]:
    """Each document's current state, read org by org with ``app.org`` set
    to that org (row-level security applies; None: purged or not visible)."""
    states: dict[tuple[str, str], DocumentState | None] = dict.fromkeys(keys)
    by_org: dict[str, list[str]] = {}
    for org, doc_id in sorted(keys):
        by_org.setdefault(org, []).append(doc_id)
    for org, ids in by_org.items():
        tenant(conn, org)
        for row in conn.execute(_DOC_STATE, (org, ids)).fetchall():
            states[(row["org"], row["id"])] = row
    if by_org:
        tenant(conn, "")  # back to no tenant for the rest of the transaction
    return states
