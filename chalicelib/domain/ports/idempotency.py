"""Requests made with an ``Idempotency-Key``: the runs the HTTP edge wraps a
POST in, and the records they keep."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from chalicelib.domain.idempotency import IdempotencyRecord


class IdempotencyRecords(Protocol):
    """Idempotency records of one org, each call its own tenant-scoped transaction."""

    def get(self, org: str, key: str) -> IdempotencyRecord | None: ...

    def claim(self, org: str, record: IdempotencyRecord, *, now_s: int, now_ms: int) -> bool:
        """Store ``record`` if its key is free, expired, or an abandoned in-progress
        record (past ``in_progress_expiry``); False if another record holds it."""

    def update(self, org: str, record: IdempotencyRecord) -> None: ...

    def delete(self, org: str, key: str) -> None: ...


class IdempotentRuns(Protocol):
    """Powertools idempotency on the cache's Redis, these records while it is out
    (adapters/idempotency.py)."""

    def run(
        self,
        *,
        org: str,
        sub: str,
        route: str,
        key: str,
        body: Any,
        action: Callable[[], dict[str, Any]],
        context: Any = None,
    ) -> dict[str, Any]:
        """``action()`` once per (org, caller, route, key); a retry gets the first
        result (a stored response: status, headers, body)."""
        ...
