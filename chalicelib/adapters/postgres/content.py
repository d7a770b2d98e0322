"""PostgreSQL rows of large content: issued uploads and extracted text.

Works on an open document transaction (``tx.uploads``), so an upload's rows
commit or roll back together with the document version, outbox and audit rows
of the same change.  Tenant-scoped like the rest: row-level security applies
(``app.org`` is set for the transaction).
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from psycopg.rows import class_row
from psycopg.types.json import Jsonb

from chalicelib.domain.content.uploads import StaleUpload, Upload

if TYPE_CHECKING:
    from chalicelib.adapters.postgres.protocols import Database, TenantTransaction

_COLUMNS = (
    "org, upload_id, doc_id, key, content_type, sha256, size, filename, max_bytes, actor, "
    "request_id, created_at, expires_at, status, object_version, object_etag, result"
)


class PostgresUploads:
    """Implements ``ContentRecords`` on an open transaction."""

    def __init__(self, tx: TenantTransaction) -> None:
        self.conn = tx.conn
        self.org = tx.org

    def add_upload(self, upload: Upload) -> None:
        self.conn.execute(
            f"INSERT INTO content_uploads ({_COLUMNS}) VALUES "
            "(%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
            (
                self.org,
                upload.upload_id,
                upload.doc_id,
                upload.key,
                upload.content_type,
                upload.sha256,
                upload.size,
                upload.filename,
                upload.max_bytes,
                upload.actor,
                upload.request_id,
                upload.created_at,
                upload.expires_at,
                upload.status,
                upload.object_version,
                upload.object_etag,
                Jsonb(upload.result) if upload.result is not None else None,
            ),
        )

    def get_upload(self, upload_id: str, *, lock: bool = False) -> Upload | None:
        cur = self.conn.cursor(row_factory=class_row(Upload))
        return cur.execute(
            f"SELECT {_COLUMNS} FROM content_uploads WHERE org = %s AND upload_id = %s"
            + (" FOR UPDATE" if lock else ""),
            (self.org, upload_id),
        ).fetchone()

    def finish_upload(
        self,
        upload_id: str,
        *,
        status: str,
        result: dict[str, Any] | None,
        object_version: str | None,
        object_etag: str | None,
    ) -> None:
        self.conn.execute(
            "UPDATE content_uploads SET status = %s, result = %s, object_version = %s, "
            "object_etag = %s, processed_at = now() WHERE org = %s AND upload_id = %s",
            (
                status,
                Jsonb(result) if result is not None else None,
                object_version,
                object_etag,
                self.org,
                upload_id,
            ),
        )

    def put_text(
        self, doc_id: str, version: int, upload_id: str, text: str, truncated: bool
    ) -> None:
        self.conn.execute(
            "INSERT INTO document_content_text (org, doc_id, version, upload_id, text, truncated) "
            "VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (org, doc_id, version) DO NOTHING",
            (self.org, doc_id, version, upload_id, text.replace("\x00", ""), truncated),
        )


class PostgresStaleUploads:
    """Implements ``StaleUploads``: pending uploads of every org whose URL expired
    (cross-org maintenance: ids only, from the ``docs_stale_uploads`` SECURITY
    DEFINER function; each is then finished in its org's transaction)."""

    def __init__(self, uow: Database) -> None:
        self.uow = uow

    def __call__(self, cutoff: datetime, limit: int) -> list[StaleUpload]:
        with self.uow.maintenance() as conn:
            cur = conn.cursor(row_factory=class_row(StaleUpload))
            return cur.execute(
                "SELECT org, upload_id, doc_id FROM docs_stale_uploads(%s, %s)", (cutoff, limit)
            ).fetchall()
