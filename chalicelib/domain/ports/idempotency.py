"""Idempotency records of requests made with an ``Idempotency-Key``."""

from __future__ import annotations

from typing import Protocol

from chalicelib.domain.idempotency import IdempotencyRecord


class IdempotencyRecords(Protocol):
    """Idempotency records of one org, each call its own tenant-scoped transaction."""

    def get(self, org: str, key: str) -> IdempotencyRecord | None: ...

    def claim(self, org: str, record: IdempotencyRecord, *, now_s: int, now_ms: int) -> bool:
        """Store ``record`` if its key is free, expired, or an abandoned in-progress
        record (past ``in_progress_expiry``); False if another record holds it."""

    def update(self, org: str, record: IdempotencyRecord) -> None: ...

    def delete(self, org: str, key: str) -> None: ...
