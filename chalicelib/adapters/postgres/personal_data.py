"""Personal data in PostgreSQL: what an access request exports, what erasure changes,
and the export jobs (docs/compliance.md).

Where rows keep a user id besides the audit trail: ``documents.owner``,
``document_versions.author``, ``content_uploads.actor``, the grants
(``document_grants.grantee`` / ``granted_by``) and
``export_jobs.requested_by``.  Erasure replaces the id by the user's audit
pseudonym in each, then deletes the pseudonym mapping, all in one transaction.
The audit trail and the consent records (adapters/postgres/consents.py) hold
pseudonyms only: deleting the mapping is what unties them from the user.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from psycopg.rows import class_row

from chalicelib.adapters.postgres.audit import INSERT_AUDIT, audit_params
from chalicelib.adapters.postgres.consents import consent_history
from chalicelib.adapters.postgres.documents import DOC_COLUMNS
from chalicelib.adapters.postgres.notifications import erase_notifications, notification_rows
from chalicelib.domain.audit import AuditEntry
from chalicelib.domain.model import Change, Document
from chalicelib.domain.personal_data import ErasurePlan, ExportJob

if TYPE_CHECKING:
    import psycopg

    from chalicelib.adapters.postgres.protocols import Database

_JOB_COLUMNS = "org, id, requested_by, state, object_key, error, created_at, finished_at"

# Every document the user owns, in one statement: the new owner (or the pseudonym, for
# deleted ones), PII fields removed, the next version, and its version, outbox and audit
# rows (the audit row by the admin who erased, with the version before and after).
_ERASE_DOCUMENTS = f"""
WITH changed AS (
  UPDATE documents d SET
    owner = coalesce(%(reassign_to)s, %(pseudonym)s),
    metadata = d.metadata - %(pii)s::text[],
    version = d.version + 1,
    updated_at = now(),
    deleted_at = CASE WHEN %(reassign_to)s::text IS NULL THEN coalesce(d.deleted_at, now())
                      ELSE d.deleted_at END
  WHERE d.org = %(org)s AND d.owner = %(user)s
  RETURNING d.*),
version_row AS (
  INSERT INTO document_versions (org, id, version, title, body, tags, metadata, content,
                                 deleted, author, action, created_at)
  SELECT org, id, version, title, body, tags, metadata, content, deleted_at IS NOT NULL,
         %(actor)s, %(action)s, updated_at FROM changed),
outbox_row AS (
  INSERT INTO outbox (org, doc_id, version, op)
  SELECT org, id, version, CASE WHEN deleted_at IS NULL THEN 'upsert' ELSE 'delete' END
  FROM changed),
audit_row AS (
  INSERT INTO audit_log (org, actor, action, doc_id, version, prev_version, request_id, details)
  SELECT org, %(actor)s, %(action)s, id, version, version - 1, %(request_id)s,
         jsonb_build_object('subject', %(pseudonym)s::text) FROM changed)
SELECT {DOC_COLUMNS} FROM changed AS documents ORDER BY id
"""


class PostgresPersonalData:
    """Implements ``PersonalData``."""

    def __init__(self, uow: Database) -> None:
        self.uow = uow

    def granted_documents(self, org: str, user: str) -> list[str]:
        with self.uow.transaction(org) as tx:
            rows = tx.conn.execute(
                "SELECT doc_id FROM document_grants WHERE org = %s AND grantee = %s "
                "ORDER BY doc_id",
                (org, user),
            ).fetchall()
        return [str(r["doc_id"]) for r in rows]

    def known_user(self, org: str, user: str) -> bool:
        with self.uow.transaction(org) as tx:
            row = tx.conn.execute(
                "SELECT EXISTS (SELECT FROM audit_actors WHERE org = %(org)s AND user_id = %(u)s) "
                "OR EXISTS (SELECT FROM documents WHERE org = %(org)s AND owner = %(u)s) AS known",
                {"org": org, "u": user},
            ).fetchone()
        return bool(row and row["known"])

    def collect(self, org: str, user: str) -> dict[str, Any]:
        with self.uow.transaction(org) as tx:
            conn = tx.conn
            docs = (
                conn.cursor(row_factory=class_row(Document))
                .execute(
                    f"SELECT {DOC_COLUMNS} FROM documents WHERE org = %s AND owner = %s "
                    "ORDER BY id",
                    (org, user),
                )
                .fetchall()
            )
            grants: list[dict[str, Any]] = conn.execute(
                "SELECT doc_id, grantee, role, granted_by, granted_at FROM document_grants "
                "WHERE org = %(org)s AND (grantee = %(u)s OR granted_by = %(u)s) "
                "ORDER BY doc_id, grantee",
                {"org": org, "u": user},
            ).fetchall()
            audit = conn.execute(
                "SELECT a.chain_seq AS seq, a.at, a.action, a.doc_id AS document, a.version, "
                "a.prev_version, a.request_id, a.details FROM audit_log a "
                "JOIN audit_actors m ON m.org = a.org AND m.pseudonym = a.actor "
                "WHERE a.org = %s AND m.user_id = %s ORDER BY a.chain_seq, a.id",
                (org, user),
            ).fetchall()
            consents = consent_history(conn, org, user)
            notifications = notification_rows(conn, org, user)
        return {
            "documents": [{**d.to_json(), "deleted": d.deleted} for d in docs],
            "grants": grants,
            "audit": audit,
            "consents": consents,
            "notification_settings": notifications,  # the address sealed: the service opens it
        }

    def erase(self, org: str, plan: ErasurePlan, change: Change) -> tuple[str, list[Document]]:
        with self.uow.transaction(org) as tx:
            conn = tx.conn
            # lock the documents first, in id order: a writer locks a document before
            # the audit chain, and so does this transaction (no lock-order deadlock)
            conn.execute(
                "SELECT id FROM documents WHERE org = %s AND owner = %s ORDER BY id FOR UPDATE",
                (org, plan.user),
            )
            row = conn.execute("SELECT docs_audit_pseudonym(%s) AS p", (plan.user,)).fetchone()
            assert row is not None
            pseudonym = str(row["p"])
            params = {
                "org": org, "user": plan.user, "reassign_to": plan.reassign_to,
                "pseudonym": pseudonym, "pii": list(plan.pii_fields), "actor": change.actor,
                "action": change.action, "request_id": change.request_id,
            }  # fmt: skip
            docs = (
                conn.cursor(row_factory=class_row(Document))
                .execute(_ERASE_DOCUMENTS, params)
                .fetchall()
            )
            scrub_pii(conn, org, [d.id for d in docs], plan.pii_fields)
            _pseudonymise_rows(conn, org, plan.user, pseudonym)
            entry = AuditEntry(
                "erasure", change.actor, request_id=change.request_id,
                details={"subject": pseudonym, "documents": len(docs),
                         "mode": "reassign" if plan.reassign_to else "delete"},
            )  # fmt: skip
            conn.execute(INSERT_AUDIT, audit_params(org, entry))
            conn.execute(
                "DELETE FROM audit_actors WHERE org = %s AND user_id = %s", (org, plan.user)
            )
        return pseudonym, docs


def scrub_pii(conn: psycopg.Connection[Any], org: str, doc_ids: list[str],
              fields: tuple[str, ...]) -> None:  # fmt: skip
    """Remove the metadata fields declared PII (``DOCS_PII_FIELDS``) from these
    documents and every stored version of them (the current row is done by the
    erasure statement, which writes a new version)."""
    if not fields or not doc_ids:
        return
    conn.execute(
        "UPDATE document_versions SET metadata = metadata - %s::text[] "
        "WHERE org = %s AND id = ANY(%s) AND metadata ?| %s::text[]",
        (list(fields), org, doc_ids, list(fields)),
    )


def _pseudonymise_rows(conn: psycopg.Connection[Any], org: str, user: str, pseudonym: str) -> None:
    """The user id, wherever a row keeps it besides the audit trail, becomes the pseudonym."""
    conn.execute(
        "UPDATE document_versions SET author = %s WHERE org = %s AND author = %s",
        (pseudonym, org, user),
    )
    conn.execute(
        "UPDATE content_uploads SET actor = %s WHERE org = %s AND actor = %s",
        (pseudonym, org, user),
    )
    conn.execute("DELETE FROM export_jobs WHERE org = %s AND requested_by = %s", (org, user))
    erase_notifications(conn, org, user)  # the address and unsubscribe setting go
    conn.execute("DELETE FROM document_grants WHERE org = %s AND grantee = %s", (org, user))
    conn.execute(
        "UPDATE document_grants SET granted_by = %s WHERE org = %s AND granted_by = %s",
        (pseudonym, org, user),
    )


class PostgresExportJobs:
    """Implements ``ExportJobs``."""

    def __init__(self, uow: Database) -> None:
        self.uow = uow

    def create(self, org: str, job_id: str, user: str, request_id: str | None) -> ExportJob:
        with self.uow.transaction(org) as tx:
            job = (
                tx.conn.cursor(row_factory=class_row(ExportJob))
                .execute(
                    f"INSERT INTO export_jobs (org, id, requested_by, request_id) "
                    f"VALUES (%s, %s, %s, %s) RETURNING {_JOB_COLUMNS}",
                    (org, job_id, user, request_id),
                )
                .fetchone()
            )
            entry = AuditEntry(
                "export-requested", user, request_id=request_id, details={"job": job_id}
            )
            tx.conn.execute(INSERT_AUDIT, audit_params(org, entry))
        assert job is not None
        return job

    def get(self, org: str, job_id: str) -> ExportJob | None:
        with self.uow.transaction(org) as tx:
            return (
                tx.conn.cursor(row_factory=class_row(ExportJob))
                .execute(
                    f"SELECT {_JOB_COLUMNS} FROM export_jobs WHERE org = %s AND id = %s",
                    (org, job_id),
                )
                .fetchone()
            )

    def due(self, limit: int) -> list[tuple[str, str]]:
        with self.uow.maintenance() as conn:
            rows = conn.execute("SELECT * FROM docs_export_jobs_due(%s)", (limit,)).fetchall()
        return [(str(r["org"]), str(r["id"])) for r in rows]

    def finish(self, org: str, job_id: str, *, state: str, key: str | None, error: str | None
               ) -> None:  # fmt: skip
        with self.uow.transaction(org) as tx:
            row = tx.conn.execute(
                "UPDATE export_jobs SET state = %s, object_key = %s, error = %s, "
                "attempts = attempts + 1, finished_at = now() "
                "WHERE org = %s AND id = %s AND state = 'pending' "
                "RETURNING requested_by, request_id",
                (state, key, error, org, job_id),
            ).fetchone()
            if row is not None:  # the export is audited as the requester's, under the
                # id of the request that started it (the worker serves no request)
                entry = AuditEntry(
                    f"export-{state}", str(row["requested_by"]), request_id=row["request_id"],
                    details={"job": job_id, **({"error": error} if error else {})},
                )  # fmt: skip
                tx.conn.execute(INSERT_AUDIT, audit_params(org, entry))
