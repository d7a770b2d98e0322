"""The audit trail in PostgreSQL: recording, reading, the chain, exported periods.

Rows are written with the user id in ``actor``; the insert trigger (migrations
0009, 0016) swaps it for the org's pseudonym of that user and leaves the row
pending (``chain_seq`` and ``hash`` NULL); the chainer
(``docs_audit_chain_pending``, migration 0016) links pending rows after the
write's commit (``chain_pending``, ``chain_all``).  Reads resolve pseudonyms
back through ``audit_actors`` as long as the mapping exists (erasure deletes
it).  Every call is one tenant-scoped transaction as ``docs_app``, which may
insert and read audit rows and nothing else (no UPDATE, no DELETE: the rows
are append-only); the chainer runs as ``docs_audit_chainer``, in its functions.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

import psycopg
from psycopg.rows import class_row
from psycopg.types.json import Jsonb

from chalicelib.domain.audit import (
    AuditEntry,
    AuditExportRecord,
    AuditFilter,
    AuditRecord,
    ChainBacklog,
    ChainHead,
    ChainRow,
)

if TYPE_CHECKING:
    from chalicelib.adapters.postgres.protocols import Database

INSERT_AUDIT = (
    "INSERT INTO audit_log (org, actor, action, doc_id, version, prev_version, request_id, "
    "details) VALUES (%(org)s, %(actor)s, %(action)s, %(doc_id)s, %(version)s, "
    "%(prev_version)s, %(request_id)s, %(details)s)"
)
CHAIN_COLUMNS = (
    "org, chain_seq, id, at, actor, action, doc_id, version, prev_version, request_id, "
    "details::text AS details, hash"
)
_RECORD_COLUMNS = (
    "a.chain_seq AS seq, a.at, coalesce(m.user_id, a.actor) AS actor, "
    "m.user_id IS NULL AS pseudonymous, a.action, a.doc_id, a.version, a.prev_version, "
    "a.request_id, CASE WHEN g.user_id IS NULL THEN a.details "
    "ELSE jsonb_set(a.details, '{grantee}', to_jsonb(g.user_id)) END AS details"
)
# the actor's and a grantee's pseudonyms (migrations 0009, 0012) shown as user ids
# while their mappings exist (an erased user stays a pseudonym)
_FROM_RECORDS = (
    "FROM audit_log a LEFT JOIN audit_actors m ON m.org = a.org AND m.pseudonym = a.actor "
    "LEFT JOIN audit_actors g ON g.org = a.org AND g.pseudonym = a.details ->> 'grantee'"
)


# the org's pending rows chained before a read that shows positions (GET /audit),
# waiting for a chainer at work rather than skipping
CHAIN_BEFORE_READ = "SELECT docs_audit_chain_pending(%s, %s, true)"
READ_CHAIN_LIMIT = 5000


def audit_params(org: str, entry: AuditEntry) -> dict[str, Any]:
    return {
        "org": org,
        "actor": entry.actor,
        "action": entry.action,
        "doc_id": entry.doc_id,
        "version": entry.version,
        "prev_version": entry.prev_version,
        "request_id": entry.request_id,
        "details": Jsonb(entry.details or {}),
    }


class PostgresAuditTrail:
    """Implements ``AuditTrail``."""

    def __init__(self, uow: Database) -> None:
        self.uow = uow

    def record(self, org: str, entry: AuditEntry) -> None:
        with self.uow.transaction(org) as tx:
            tx.conn.execute(INSERT_AUDIT, audit_params(org, entry))

    def page(self, org: str, where: AuditFilter, limit: int) -> list[AuditRecord]:
        clauses, params = ["a.org = %s"], [org]
        if where.doc_id is not None:
            clauses.append("a.doc_id = %s")
            params.append(where.doc_id)
        if where.user is not None:  # by pseudonym: the index on (org, actor, chain_seq);
            # a user id while its mapping exists, else the value itself (an erased
            # user's pseudonym, as earlier answers show it)
            clauses.append(
                "a.actor = coalesce((SELECT u.pseudonym FROM audit_actors u "
                "WHERE u.org = a.org AND u.user_id = %s), %s)"
            )
            params += [where.user, where.user]
        if where.since is not None:
            clauses.append("a.at >= %s")
            params.append(where.since)  # type: ignore[arg-type]
        if where.before_seq is not None:
            clauses.append("a.chain_seq < %s")
            params.append(where.before_seq)  # type: ignore[arg-type]
        params.append(limit)  # type: ignore[arg-type]
        with self.uow.transaction(org) as tx:
            # the org's pending rows are chained first (same round trip, own statement:
            # the SELECT's snapshot sees them chained), so every row has its position
            cur = psycopg.ClientCursor(tx.conn, row_factory=class_row(AuditRecord))
            cur.execute(
                f"{CHAIN_BEFORE_READ}; SELECT {_RECORD_COLUMNS} {_FROM_RECORDS} "
                f"WHERE {' AND '.join(clauses)} AND a.chain_seq IS NOT NULL "
                "ORDER BY a.chain_seq DESC LIMIT %s",
                [org, READ_CHAIN_LIMIT, *params],
            )
            cur.nextset()
            return cur.fetchall()

    def chain_pending(self, org: str, *, limit: int, wait: bool = False) -> int:
        with self.uow.maintenance() as conn:
            row = conn.execute(
                "SELECT docs_audit_chain_pending(%s, %s, %s) AS n", (org, limit, wait)
            ).fetchone()
        return int(row["n"]) if row else 0

    def chain_all(self, limit: int) -> dict[str, int]:
        with self.uow.maintenance() as conn:
            rows = conn.execute("SELECT org, n FROM docs_audit_chain_all(%s)", (limit,)).fetchall()
        return {str(r["org"]): int(r["n"]) for r in rows}

    def backlog(self) -> ChainBacklog:
        with self.uow.maintenance() as conn:
            row = conn.execute("SELECT lag_s, pending FROM docs_audit_chain_stats()").fetchone()
        if row is None:
            return ChainBacklog(0.0, 0)
        return ChainBacklog(float(row["lag_s"] or 0.0), int(row["pending"]))

    def chain(self, org: str, *, after_seq: int, limit: int) -> list[ChainRow]:
        with self.uow.transaction(org) as tx:
            cur = tx.conn.cursor(row_factory=class_row(ChainRow))
            return cur.execute(
                f"SELECT {CHAIN_COLUMNS} FROM audit_log WHERE org = %s AND chain_seq > %s "
                "ORDER BY chain_seq LIMIT %s",
                (org, after_seq, limit),
            ).fetchall()

    def head(self, org: str) -> ChainHead | None:
        with self.uow.transaction(org) as tx:
            cur = tx.conn.cursor(row_factory=class_row(ChainHead))
            return cur.execute(
                "SELECT org, last_seq, last_hash FROM audit_chain_heads WHERE org = %s", (org,)
            ).fetchone()

    def pseudonym(self, org: str, user: str) -> str | None:
        with self.uow.transaction(org) as tx:
            row = tx.conn.execute(
                "SELECT pseudonym FROM audit_actors WHERE org = %s AND user_id = %s", (org, user)
            ).fetchone()
        return None if row is None else str(row["pseudonym"])

    def orgs(self) -> list[str]:
        with self.uow.maintenance() as conn:
            rows = conn.execute("SELECT docs_audit_orgs() AS org").fetchall()
        return [str(r["org"]) for r in rows]

    def between(self, org: str, start: datetime, end: datetime) -> list[ChainRow]:
        with self.uow.transaction(org) as tx:
            cur = tx.conn.cursor(row_factory=class_row(ChainRow))
            return cur.execute(
                f"SELECT {CHAIN_COLUMNS} FROM audit_log WHERE org = %s AND at >= %s AND at < %s "
                "AND chain_seq IS NOT NULL ORDER BY chain_seq",
                (org, start, end),
            ).fetchall()

    def exported(self, org: str, period_start: datetime) -> AuditExportRecord | None:
        with self.uow.transaction(org) as tx:
            cur = tx.conn.cursor(row_factory=class_row(AuditExportRecord))
            return cur.execute(
                "SELECT org, period_start, period_end, object_key, sha256, rows, first_seq, "
                "last_seq, last_hash FROM audit_exports WHERE org = %s AND period_start = %s",
                (org, period_start),
            ).fetchone()

    def record_export(self, record: AuditExportRecord) -> bool:
        with self.uow.transaction(record.org) as tx:
            cur = tx.conn.execute(
                "INSERT INTO audit_exports (org, period_start, period_end, object_key, sha256, "
                "rows, first_seq, last_seq, last_hash) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s) "
                "ON CONFLICT (org, period_start) DO NOTHING",
                (
                    record.org, record.period_start, record.period_end, record.object_key,
                    record.sha256, record.rows, record.first_seq, record.last_seq,
                    record.last_hash,
                ),
            )  # fmt: skip
            return cur.rowcount == 1
