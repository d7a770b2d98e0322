"""Idempotency records in PostgreSQL (``idempotency_keys``): where they live while
Redis is out.

The records hold whole response bodies, so they are tenant rows like any
other: each carries its org and is read and written in that org's
transaction (row-level security applies).
"""

from __future__ import annotations

from psycopg.rows import class_row

from chalicelib.adapters.postgres.protocols import Database
from chalicelib.domain.idempotency import IdempotencyRecord


class PostgresIdempotencyRecords:
    """Implements ``IdempotencyRecords``: one tenant-scoped transaction per call."""

    def __init__(self, uow: Database) -> None:
        self.uow = uow

    def get(self, org: str, key: str) -> IdempotencyRecord | None:
        with self.uow.transaction(org) as tx:
            return (
                tx.conn.cursor(row_factory=class_row(IdempotencyRecord))
                .execute(
                    "SELECT key, status, expiry, in_progress_expiry, data, validation "
                    "FROM idempotency_keys WHERE org = %s AND key = %s",
                    (org, key),
                )
                .fetchone()
            )

    def claim(self, org: str, record: IdempotencyRecord, *, now_s: int, now_ms: int) -> bool:
        with self.uow.transaction(org) as tx:
            claimed = tx.conn.execute(
                "INSERT INTO idempotency_keys AS k "
                "(org, key, status, expiry, in_progress_expiry, validation) "
                "VALUES (%s, %s, %s, %s, %s, %s) "
                "ON CONFLICT (key) DO UPDATE SET status = EXCLUDED.status, "
                "expiry = EXCLUDED.expiry, in_progress_expiry = EXCLUDED.in_progress_expiry, "
                "validation = EXCLUDED.validation, data = NULL "
                "WHERE k.expiry < %s OR (k.status = 'INPROGRESS' "
                "AND k.in_progress_expiry IS NOT NULL AND k.in_progress_expiry < %s) "
                "RETURNING key",
                (
                    org,
                    record.key,
                    record.status,
                    record.expiry,
                    record.in_progress_expiry,
                    record.validation,
                    now_s,
                    now_ms,
                ),
            ).fetchone()
        return claimed is not None

    def update(self, org: str, record: IdempotencyRecord) -> None:
        with self.uow.transaction(org) as tx:
            tx.conn.execute(
                "UPDATE idempotency_keys SET status = %s, data = %s, expiry = %s "
                "WHERE org = %s AND key = %s",
                (record.status, record.data, record.expiry, org, record.key),
            )

    def delete(self, org: str, key: str) -> None:
        with self.uow.transaction(org) as tx:
            tx.conn.execute("DELETE FROM idempotency_keys WHERE org = %s AND key = %s", (org, key))
