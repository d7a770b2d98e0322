"""Consent records in PostgreSQL (migration 0014, docs/compliance.md).

Rows are written with user ids; the table's trigger stores the org's audit
pseudonyms instead (as the audit trail's chain trigger does), so reads find a
user's records through ``audit_actors`` while that mapping exists, and an
erasure, which deletes it, leaves records that name nobody.  ``docs_app`` may
read and append, never rewrite.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from psycopg.rows import class_row

from chalicelib.adapters.postgres.audit import INSERT_AUDIT, audit_params
from chalicelib.domain.audit import AuditEntry
from chalicelib.domain.consents import ConsentChange, ConsentState
from chalicelib.domain.model import Change

if TYPE_CHECKING:
    import psycopg

    from chalicelib.adapters.postgres.protocols import Database

_CURRENT = (
    "SELECT DISTINCT ON (c.purpose) c.purpose, c.granted, c.at, c.policy_version "
    "FROM consent_records c JOIN audit_actors m ON m.org = c.org AND m.pseudonym = c.subject "
    "WHERE c.org = %(org)s AND m.user_id = %(user)s ORDER BY c.purpose, c.id DESC"
)
_APPEND = (
    "INSERT INTO consent_records (org, subject, purpose, granted, policy_version, actor, "
    "request_id) SELECT %(org)s, %(user)s, p.purpose, p.granted, %(policy)s, %(actor)s, "
    "%(request_id)s FROM unnest(%(purposes)s::text[], %(granted)s::boolean[]) "
    "WITH ORDINALITY AS p (purpose, granted, n) ORDER BY p.n"
)
# the export's history: who recorded each change shown as a user id while known
_HISTORY = (
    "SELECT c.purpose, c.granted, c.at, c.policy_version, "
    "coalesce(a.user_id, c.actor) AS recorded_by, c.request_id "
    "FROM consent_records c JOIN audit_actors m ON m.org = c.org AND m.pseudonym = c.subject "
    "LEFT JOIN audit_actors a ON a.org = c.org AND a.pseudonym = c.actor "
    "WHERE c.org = %(org)s AND m.user_id = %(user)s ORDER BY c.id"
)


def consent_history(conn: psycopg.Connection[Any], org: str, user: str) -> list[dict[str, Any]]:
    """Every consent record of ``user``, oldest first, in the caller's transaction."""
    return conn.execute(_HISTORY, {"org": org, "user": user}).fetchall()


class PostgresConsentRecords:
    """Implements ``ConsentRecords``."""

    def __init__(self, uow: Database) -> None:
        self.uow = uow

    def current(self, org: str, user: str) -> list[ConsentState]:
        with self.uow.transaction(org) as tx:
            return (
                tx.conn.cursor(row_factory=class_row(ConsentState))
                .execute(_CURRENT, {"org": org, "user": user})
                .fetchall()
            )

    def record(self, org: str, user: str, consents: ConsentChange, change: Change
               ) -> list[ConsentState]:  # fmt: skip
        purposes = list(consents.choices)
        with self.uow.transaction(org) as tx:
            conn = tx.conn
            conn.execute(
                _APPEND,
                {"org": org, "user": user, "policy": consents.policy_version,
                 "actor": change.actor, "request_id": change.request_id,
                 "purposes": purposes, "granted": [consents.choices[p] for p in purposes]},
            )  # fmt: skip
            entry = AuditEntry(
                change.action, change.actor, request_id=change.request_id,
                details={"consents": consents.choices, "policy_version": consents.policy_version},
            )  # fmt: skip
            conn.execute(INSERT_AUDIT, audit_params(org, entry))
            return (
                conn.cursor(row_factory=class_row(ConsentState))
                .execute(_CURRENT, {"org": org, "user": user})
                .fetchall()
            )
