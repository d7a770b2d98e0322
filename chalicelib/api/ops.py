"""Views for operators and tools, public (no token): health and the OpenAPI document."""

from __future__ import annotations

from typing import Any

from chalice.app import Response

from chalicelib import bootstrap
from chalicelib.api.endpoint import NO_STORE
from chalicelib.api.http import json_response


def health() -> Response:
    report = bootstrap.container().health.check()
    body: dict[str, Any] = {
        "status": "ok" if report.ok else "unavailable",
        "checks": report.checks,
    }
    if report.search_sync_lag_s is not None:
        body["search_sync_lag_s"] = report.search_sync_lag_s
    if not report.ok:  # the rest degrade features, not the service
        return json_response(body, status=503, headers={"Retry-After": "5", **NO_STORE})
    return json_response(body, headers=dict(NO_STORE))
