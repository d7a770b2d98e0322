"""Documents in PostgreSQL: the row, and with every change its version, outbox and
audit rows, written by one statement (``tx.documents``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import psycopg
from psycopg.rows import class_row, dict_row
from psycopg.types.json import Jsonb

from chalicelib.adapters.postgres.access import GRANTS_COLUMN, readable_clause
from chalicelib.domain.model import Change, Document, ListCursor, VersionRecord
from chalicelib.domain.viewer import Viewer

if TYPE_CHECKING:
    from chalicelib.adapters.postgres.protocols import TenantTransaction

LIST_COLUMNS = (
    "org, id, title, body, tags, metadata, version, owner, created_at, updated_at, "
    "deleted_at, content, visibility"
)
# a document with its grants, in one statement (every point read: prefetch, read_document)
DOC_COLUMNS = f"{LIST_COLUMNS}, {GRANTS_COLUMN}"
_VERSION_COLUMNS = (
    "version, title, body, tags, metadata, deleted, author, action, created_at, content"
)
_OP_FOR_ACTION = {"delete": "delete", "purge": "purge"}
_RECORD_CHANGE = (
    "version_row AS (INSERT INTO document_versions (org, id, version, title, body, tags, "
    "metadata, content, deleted, author, action, created_at) SELECT org, id, version, title, "
    "body, tags, metadata, content, deleted_at IS NOT NULL, %(actor)s, %(action)s, updated_at "
    "FROM changed), "
    "outbox_row AS (INSERT INTO outbox (org, doc_id, version, op) "
    "SELECT org, id, version, %(op)s FROM changed), "
    # the audit row: who (the chain trigger stores their pseudonym), what, the version
    # before and after, the request ids; no content (the trail outlives a purge)
    "audit_row AS (INSERT INTO audit_log (org, actor, action, doc_id, version, prev_version, "
    "request_id, details) SELECT org, %(actor)s, %(action)s, id, version, "
    "%(expected_version)s::bigint, %(request_id)s, "
    "jsonb_strip_nulls(jsonb_build_object('deleted', deleted_at IS NOT NULL, "
    "'client_request_id', %(client_request_id)s::text)) || %(details)s::jsonb FROM changed)"
)


class PostgresDocuments:
    """Implements ``DocumentRepository`` on an open transaction."""

    def __init__(self, tx: TenantTransaction) -> None:
        self.tx = tx
        self.org = tx.org

    def get(self, doc_id: str) -> Document | None:
        if doc_id in self.tx.prefetched:
            return self.tx.prefetched.pop(doc_id)
        return self.tx.fetchone(
            class_row(Document),
            f"SELECT {DOC_COLUMNS} FROM documents WHERE org = %s AND id = %s",
            (self.org, doc_id),
        )

    def insert(self, doc: Document, change: Change, *, last: bool = False) -> int | None:
        """The version written: the document's own, raised above the id's version
        floor when the id had an earlier, purged life (migration 0011), so the new
        life counts above the purge's delete held by the search index."""
        return self._write(
            "INSERT INTO documents (org, id, title, body, tags, metadata, version, owner, "
            "created_at, updated_at, deleted_at, content, visibility) VALUES (%(org)s, %(id)s, "
            "%(title)s, %(body)s, %(tags)s, %(metadata)s, %(version)s + coalesce((SELECT "
            "f.version FROM document_version_floors f WHERE f.org = %(org)s "
            "AND f.doc_id = %(id)s), 0), %(owner)s, "
            "%(created_at)s, %(updated_at)s, %(deleted_at)s, %(content)s, %(visibility)s) "
            "ON CONFLICT (org, id) DO NOTHING",
            doc,
            change,
            expected_version=None,
            last=last,
        )

    def update(
        self, doc: Document, change: Change, *, expected_version: int, last: bool = False
    ) -> bool:
        written = self._write(
            "UPDATE documents SET title = %(title)s, body = %(body)s, tags = %(tags)s, "
            "metadata = %(metadata)s, version = %(version)s, owner = %(owner)s, "
            "created_at = %(created_at)s, updated_at = %(updated_at)s, "
            "deleted_at = %(deleted_at)s, content = %(content)s, visibility = %(visibility)s "
            "WHERE org = %(org)s AND id = %(id)s AND version = %(expected_version)s",
            doc,
            change,
            expected_version=expected_version,
            last=last,
        )
        return written is not None

    def _write(
        self,
        statement: str,
        doc: Document,
        change: Change,
        *,
        expected_version: int | None,
        last: bool = False,
    ) -> int | None:
        """The row change, its version row, outbox row and audit row: one statement;
        the version written, or None.

        Data-modifying CTEs run together and read the changed row from
        ``RETURNING``; when the row did not change (id taken, or not at the
        expected version) nothing else is written either.  With ``last`` the
        statement and COMMIT travel together: values are bound client-side and
        both go as one simple-protocol query (one round trip, not two).
        """
        query = (
            f"WITH changed AS ({statement} RETURNING *), {_RECORD_CHANGE} "
            "SELECT version FROM changed"
        )
        cur: psycopg.Cursor[dict[str, Any]]
        if last:
            query += "; COMMIT"
            cur = psycopg.ClientCursor(self.tx.conn, row_factory=dict_row)
            self.tx.committing = True
        else:
            cur = self.tx.conn.cursor()
        row = cur.execute(
            query,
            {
                "org": self.org,
                "id": doc.id,
                "title": doc.title,
                "body": Jsonb(doc.body),
                "tags": doc.tags,
                "metadata": Jsonb(doc.metadata),
                "version": doc.version,
                "owner": doc.owner,
                "created_at": doc.created_at,
                "updated_at": doc.updated_at,
                "deleted_at": doc.deleted_at,
                "content": Jsonb(doc.content) if doc.content is not None else None,
                "visibility": doc.visibility,
                "details": Jsonb(change.details or {}),
                "expected_version": expected_version,
                "op": "delete" if doc.deleted else _OP_FOR_ACTION.get(change.action, "upsert"),
                "action": change.action,
                "actor": change.actor,
                "request_id": change.request_id,
                "client_request_id": change.client_request_id,
            },
        ).fetchone()
        if last:
            self.tx.committed = True
        return None if row is None else int(row["version"])

    def list_documents(
        self, *, limit: int, after: ListCursor | None, tag: str | None, viewer: Viewer | None = None
    ) -> list[Document]:
        clauses = ["org = %s", "deleted_at IS NULL"]
        params: list[Any] = [self.org]
        if viewer is not None and not viewer.admin:
            clause, extra = readable_clause(viewer)
            clauses.append(clause)
            params += extra
        if after is not None:
            clauses.append("(created_at, id) < (%s, %s)")
            params += [after.created_at, after.id]
        if tag is not None:
            clauses.append("tags @> ARRAY[%s]::text[]")
            params.append(tag)
        params.append(limit)
        cur = self.tx.conn.cursor(row_factory=class_row(Document))
        return cur.execute(
            f"SELECT {LIST_COLUMNS} FROM documents WHERE {' AND '.join(clauses)} "
            "ORDER BY created_at DESC, id DESC LIMIT %s",
            params,
        ).fetchall()

    def list_versions(self, doc_id: str, *, limit: int, before: int | None) -> list[VersionRecord]:
        return self.tx.fetchall(  # also after a lost insert (a replayed create reads)
            class_row(VersionRecord),
            f"SELECT {_VERSION_COLUMNS} FROM document_versions WHERE org = %s AND id = %s "
            "AND version < %s ORDER BY version DESC LIMIT %s",
            (self.org, doc_id, before if before is not None else 2**62, limit),
        )

    def get_version(self, doc_id: str, version: int) -> VersionRecord | None:
        return self.tx.fetchone(
            class_row(VersionRecord),
            f"SELECT {_VERSION_COLUMNS} FROM document_versions "
            "WHERE org = %s AND id = %s AND version = %s",
            (self.org, doc_id, version),
        )
