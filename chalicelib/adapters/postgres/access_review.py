"""The access review in PostgreSQL: one statement a page, one transaction an attestation.

Reads run as ``docs_app`` under the org's row-level security.  A grant's
last activity is its grantee's latest audit row on the document, found by
the org's pseudonym of the grantee (audit rows name pseudonyms, migration
0009) through the index on ``(org, doc_id, chain_seq)``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from psycopg.rows import class_row, dict_row
from psycopg.types.json import Jsonb

from chalicelib.adapters.postgres.audit import INSERT_AUDIT, audit_params
from chalicelib.domain.access_review import (
    Attestation,
    DocumentAccess,
    GrantAccess,
    UserAccess,
)
from chalicelib.domain.audit import AuditEntry

if TYPE_CHECKING:
    from chalicelib.adapters.postgres.protocols import Database

# the grantee's latest audited action on the document (reads are not audited)
_LAST_ACTIVITY = (
    "(SELECT max(a.at) FROM audit_log a WHERE a.org = g.org AND a.doc_id = g.doc_id "
    "AND a.actor = (SELECT m.pseudonym FROM audit_actors m "
    "WHERE m.org = g.org AND m.user_id = g.grantee))"
)
_DOCUMENTS = f"""
WITH page AS (
  SELECT org, id, visibility, owner FROM documents
  WHERE org = %(org)s AND deleted_at IS NULL AND id > %(after)s ORDER BY id LIMIT %(limit)s
)
SELECT p.id, p.visibility, p.owner, g.grantee, g.role, g.granted_by, g.granted_at,
       CASE WHEN g.grantee IS NULL THEN NULL ELSE {_LAST_ACTIVITY} END AS last_activity
FROM page p LEFT JOIN document_grants g ON g.org = p.org AND g.doc_id = p.id
ORDER BY p.id, g.grantee
"""
# every (user, document) reached by name, and one row with document '' for each
# known user (owner, grantee, audit actor) reached by no document by name
_USERS = f"""
WITH named AS (
  SELECT d.owner AS "user", d.id AS document, d.visibility, 'owner' AS via, NULL::text AS role,
         NULL::timestamptz AS granted_at, NULL::timestamptz AS last_activity
  FROM documents d WHERE d.org = %(org)s AND d.deleted_at IS NULL
  UNION ALL
  SELECT g.grantee, g.doc_id, d.visibility, 'grant', g.role, g.granted_at, {_LAST_ACTIVITY}
  FROM document_grants g JOIN documents d
    ON d.org = g.org AND d.id = g.doc_id AND d.deleted_at IS NULL
  WHERE g.org = %(org)s
), reached AS (
  SELECT * FROM named
  UNION ALL
  SELECT m.user_id, '', NULL, 'role', NULL, NULL, NULL FROM audit_actors m
  WHERE m.org = %(org)s AND NOT EXISTS (SELECT FROM named n WHERE n."user" = m.user_id)
)
SELECT * FROM reached WHERE ("user", document) > (%(user)s, %(document)s)
ORDER BY "user", document LIMIT %(limit)s
"""
_INSERT_REVIEW = (
    "INSERT INTO access_reviews (org, id, reviewed_by, notes, revoked, request_id) "
    "VALUES (%s, %s, %s, %s, %s, %s) RETURNING reviewed_at"
)


class PostgresAccessReview:
    """Implements ``AccessReviewStore``."""

    def __init__(self, uow: Database) -> None:
        self.uow = uow

    def documents(self, org: str, *, after: str, limit: int) -> list[DocumentAccess]:
        params = {"org": org, "after": after, "limit": limit}
        with self.uow.transaction(org) as tx:
            rows = tx.conn.cursor(row_factory=dict_row).execute(_DOCUMENTS, params).fetchall()
        out: list[DocumentAccess] = []
        grants: list[GrantAccess] = []
        for i, row in enumerate(rows):
            if row["grantee"] is not None:
                grants.append(
                    GrantAccess(
                        row["grantee"], row["role"], row["granted_by"], row["granted_at"],
                        row["last_activity"],
                    )
                )  # fmt: skip
            if i + 1 == len(rows) or rows[i + 1]["id"] != row["id"]:
                out.append(
                    DocumentAccess(row["id"], row["visibility"], row["owner"], tuple(grants))
                )
                grants = []
        return out

    def users(self, org: str, *, after: tuple[str, str], limit: int) -> list[UserAccess]:
        params = {"org": org, "user": after[0], "document": after[1], "limit": limit}
        with self.uow.transaction(org) as tx:
            cur = tx.conn.cursor(row_factory=class_row(UserAccess))
            return cur.execute(_USERS, params).fetchall()

    def attest(self, org: str, attestation: Attestation, audit: AuditEntry) -> Attestation:
        revoked = [{"document": d, "user": u} for d, u in attestation.revoked]
        with self.uow.transaction(org) as tx:
            params = (
                org, attestation.id, attestation.reviewed_by, attestation.notes, Jsonb(revoked),
                audit.request_id,
            )  # fmt: skip
            cur = tx.conn.cursor(row_factory=dict_row)
            row: dict[str, Any] | None = cur.execute(_INSERT_REVIEW, params).fetchone()
            tx.conn.execute(INSERT_AUDIT, audit_params(org, audit))
        assert row is not None  # the row holds pseudonyms: the answer names the users
        return Attestation(
            attestation.id,
            attestation.reviewed_by,
            row["reviewed_at"],
            attestation.notes,
            attestation.revoked,
        )
