"""Health: what ``GET /health`` reports and what the edge's breaker gauge reads.

PostgreSQL decides (without it nothing works); Redis, S3 and OpenSearch
degrade features, not the service.  /health is public, so a flood of health
requests must not become a flood of dependency calls: S3 and OpenSearch are
probed at most every ``every_s`` seconds per process.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from chalicelib.domain.errors import DomainError
from chalicelib.domain.ports.content import BlobStore
from chalicelib.domain.ports.outbox import Outbox
from chalicelib.domain.ports.search import SearchIndex
from chalicelib.domain.ports.transaction import UnitOfWork

T = TypeVar("T")


class CacheProbe(Protocol):
    def status(self) -> str:
        """ "ok", "degraded" (its breaker is open or half-open) or "disabled"."""
        ...

    def ping(self) -> bool:
        """This process's own round trip to the cache."""
        ...


@dataclass(frozen=True)
class Health:
    """Each dependency's state ("ok", "down", "degraded", "disabled", "skipped")
    and the search sync's lag when it could be read."""

    checks: dict[str, str]
    search_sync_lag_s: float | None = None

    @property
    def ok(self) -> bool:
        return self.checks["postgres"] == "ok"


class HealthService:
    def __init__(
        self,
        database: UnitOfWork,
        cache: CacheProbe,
        *,
        blobs: Callable[[], BlobStore | None],
        search: Callable[[], tuple[SearchIndex, Outbox]] | None,
        every_s: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.database = database
        self.cache = cache
        self.blobs = blobs  # None where no S3 is configured (no local endpoint, not on Lambda)
        self.search = search  # None without OpenSearch
        self.every_s = every_s
        self.clock = clock
        self._probed: dict[str, tuple[float, Any]] = {}  # name -> (when, result)

    def check(self) -> Health:
        checks: dict[str, str] = {}
        try:
            self.database.ping()
            checks["postgres"] = "ok"
        except DomainError:
            checks["postgres"] = "down"
        status = self.cache.status()
        if status != "disabled":
            status = "ok" if self.cache.ping() else "degraded"  # this request's own view
        checks["redis"] = status
        checks["s3"] = self._s3()
        lag = None
        if checks["postgres"] == "ok":
            checks["search"], lag = self._search()
        else:
            checks["search"] = "skipped"
        return Health(checks, lag)

    def cache_degraded(self) -> bool:
        """The cache's breaker is open or half-open (no round trip)."""
        return self.cache.status() == "degraded"

    def _s3(self) -> str:
        blobs = self.blobs()
        if blobs is None:
            return "skipped"

        def probe() -> str:
            try:
                blobs.ping()
            except DomainError:
                return "down"
            return "ok"

        return self._recently("s3", probe)

    def _search(self) -> tuple[str, float | None]:
        """OpenSearch reachability and the sync lag."""
        if self.search is None:
            return "skipped", None
        index, outbox = self.search()

        def probe() -> tuple[str, float | None]:
            status = "ok" if index.ping() else "down"
            try:
                return status, round(outbox.stats().lag_s, 3)
            except DomainError:
                return status, None

        return self._recently("search", probe)

    def _recently(self, name: str, probe: Callable[[], T]) -> T:
        """``probe()``, run at most every ``every_s`` seconds."""
        now = self.clock()
        at, result = self._probed.get(name, (-1e9, None))
        if now - at > self.every_s:
            result = probe()
            self._probed[name] = (now, result)
        checked: T = result
        return checked
