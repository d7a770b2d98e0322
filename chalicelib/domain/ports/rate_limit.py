"""Per-caller rate limits: the token bucket the HTTP edge asks before a view runs.

The adapter shares the cache's Redis client (adapters/redis/rate_limit.py).
"""

from __future__ import annotations

from typing import Protocol


class RateDecision(Protocol):
    """One request's verdict from the caller's token bucket."""

    @property
    def allowed(self) -> bool: ...

    @property
    def limit(self) -> int: ...

    @property
    def retry_after_s(self) -> int: ...

    def headers(self) -> dict[str, str]:
        """The ``RateLimit-*`` headers (and ``Retry-After`` when refused)."""
        ...


class RateLimit(Protocol):
    def check(self, org: str, sub: str, role: str) -> RateDecision | None:
        """The caller's verdict; None when the limiter cannot tell (fails open)."""
        ...
