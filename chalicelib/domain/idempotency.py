"""A stored outcome of a request made with an ``Idempotency-Key``."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class IdempotencyRecord:
    """A stored outcome of a request made with an ``Idempotency-Key``."""

    key: str  # the hashed (org, sub, route, key)
    status: str  # INPROGRESS | COMPLETED
    expiry: int  # epoch seconds
    in_progress_expiry: int | None = None  # epoch milliseconds
    data: str | None = None  # the response, serialized
    validation: str | None = None  # the hash of the request body
