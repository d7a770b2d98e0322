"""Views for operators and tools, public (no token): health and the OpenAPI document."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any, TypeVar

from chalice.app import Response

from chalicelib import bootstrap
from chalicelib.api.endpoint import NO_STORE
from chalicelib.api.http import json_response
from chalicelib.bootstrap import Container
from chalicelib.domain.errors import DomainError

T = TypeVar("T")
_CHECKS: dict[str, tuple[float, Any]] = {}  # name -> (when, result), per process


def _checked_recently(name: str, probe: Callable[[], T]) -> T:
    """``probe()``, run at most every 10 s per process (/health is public: a flood
    of health requests must not become a flood of dependency calls)."""
    now = time.monotonic()
    at, result = _CHECKS.get(name, (-1e9, None))
    if now - at > 10:
        result = probe()
        _CHECKS[name] = (now, result)
    checked: T = result
    return checked


def _search_check(c: Container) -> tuple[str, float | None]:
    """OpenSearch reachability and the sync lag."""
    if not c.settings.opensearch_url:
        return "skipped", None

    def probe() -> tuple[str, float | None]:
        status = "ok" if c.search_index.ping() else "down"
        try:
            return status, round(c.outbox.stats().lag_s, 3)
        except DomainError:
            return status, None

    return _checked_recently("search", probe)


def _s3_check(c: Container) -> str:
    """S3 reachability; 'skipped' where no S3 is configured (no local endpoint, not on Lambda)."""
    if not (c.settings.aws_endpoint_url or os.environ.get("AWS_LAMBDA_FUNCTION_NAME")):
        return "skipped"

    def probe() -> str:
        try:
            c.blobs.ping()
        except DomainError:
            return "down"
        return "ok"

    return _checked_recently("s3", probe)


def health() -> Response:
    c = bootstrap.container()
    checks: dict[str, str] = {}
    try:
        c.uow.ping()
        checks["postgres"] = "ok"
    except DomainError:
        checks["postgres"] = "down"
    status = c.cache.status()
    if status != "disabled":
        status = "ok" if c.cache.ping() else "degraded"  # this request's own view of Redis
    checks["redis"] = status
    checks["s3"] = _s3_check(c)
    checks["search"], lag = _search_check(c) if checks["postgres"] == "ok" else ("skipped", None)
    ok = checks["postgres"] == "ok"  # the rest degrade features, not the service
    body: dict[str, Any] = {"status": "ok" if ok else "unavailable", "checks": checks}
    if lag is not None:
        body["search_sync_lag_s"] = lag
    if not ok:
        return json_response(body, status=503, headers={"Retry-After": "5", **NO_STORE})
    return json_response(body, headers=dict(NO_STORE))
