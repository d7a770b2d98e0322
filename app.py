"""The API Lambda: the Chalice app, its routes (the route table,
chalicelib/api/routes.py, binds each to its view), the edge middleware every
response passes through, and ``handler``.

``handler`` is what Lambda (and the local server) invokes: Powertools wraps
the Chalice app with request-scoped logging, tracing and metrics.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from chalice.app import Chalice, Request, Response

from chalicelib import bootstrap
from chalicelib.api import cors, routes
from chalicelib.api.endpoint import request_path
from chalicelib.api.http import (
    SECURITY_HEADERS,
    pick_request_id,
    problem,
    request_id,
    rewrite_chalice_error,
)
from chalicelib.observability import (
    METRICS_ON,
    count,
    gauge,
    latency_sli,
    logger,
    metrics,
    milliseconds,
    per_version,
    tracer,
    tracing_disabled,
)

app = Chalice(app_name="docs-service")
app.log.disabled = True  # Powertools logs; Chalice's own logger would double every error
# No route answers with a binary body, and the API declares no binary media types
# (template.yaml: x-amazon-apigateway-binary-media-types: []); Chalice's default list
# of 16 would only be matched against every request's and response's content type
# (three times per request, ~5 % of a GET hit's CPU).  A route that serves binary
# bodies adds its type here and to the template.
app.api.binary_types = []
routes.register(app)


@app.middleware("http")
def edge(event: Request, get_response: Callable[[Request], Response]) -> Response:
    """Every response: problem+json for Chalice's own errors, request id, security headers."""
    started = time.perf_counter()
    rid = request_id(event)
    response = rewrite_chalice_error(get_response(event), request_path(event))
    headers = response.headers
    headers["X-Request-Id"] = rid
    for name, value in SECURITY_HEADERS.items():
        headers.setdefault(name, value)
    headers.setdefault("Cache-Control", "no-store")
    if response.status_code >= 500:
        count("ServerErrors")
    ms = (time.perf_counter() - started) * 1000
    if METRICS_ON:
        # the latency a deploy is judged by: long polls wait on purpose, so they are left out
        query: dict[str, str] = dict(event.query_params or {})
        if query.get("feed") != "longpoll":
            milliseconds("RequestLatency", ms)
        sli = latency_sli(event.method, request_path(event), query)
        if sli is not None:
            milliseconds("ReadLatency" if sli == "read" else "WriteLatency", ms)
        # a gauge (1 open or half-open, 0 closed) the breaker alarm reads with Maximum
        gauge("CacheBreakerOpen", float(bootstrap.container().health.cache_degraded()))
    logger.debug(
        "request",
        method=event.method,
        path=event.path,
        status=response.status_code,
        ms=round(ms, 2),
    )
    return response


def _edge_headers(event: dict[str, Any], response: Response) -> dict[str, Any]:
    """An answer made before Chalice routes (no route, a preflight), with the
    headers every response carries."""
    response.headers.update(SECURITY_HEADERS)
    given = cors.header(event.get("headers"), "x-request-id")
    context_id = (event.get("requestContext") or {}).get("requestId")
    response.headers["X-Request-Id"] = pick_request_id(given, context_id)
    return response.to_dict()


def _not_found_problem(event: dict[str, Any], path: str) -> dict[str, Any]:
    """A path the app has no route for (API Gateway would not send it; the local
    server and tests might)."""
    response = problem(404, "not-found", "Not found", f"No route for {path}.", instance=path)
    return _edge_headers(event, response)


def _preflight(event: dict[str, Any], resource: str) -> dict[str, Any]:
    """``OPTIONS`` on a route: a browser's preflight, answered without a token
    (chalicelib/api/cors.py has the rule)."""
    origins = bootstrap.container().settings.cors_origins
    origin = cors.header(event.get("headers"), "origin")
    status, headers = cors.preflight(origin, app.routes[resource], origins)
    if status == 204:
        return _edge_headers(event, Response(body="", status_code=204, headers={**headers}))
    detail = "This origin is not allowed to call the API from a browser (DOCS_CORS_ORIGINS)."
    path = event.get("path") or resource
    return _edge_headers(
        event, problem(status, "forbidden", "Forbidden", detail, instance=path, headers=headers)
    )


def _browser_headers(event: dict[str, Any], result: dict[str, Any]) -> dict[str, Any]:
    """CORS headers for an allowed origin, and ``Vary: Accept-Encoding`` on a body
    that may go out compressed (API Gateway and the local server gzip it)."""
    headers = result.get("headers")
    if headers is None:
        headers = result["headers"] = {}
    origins = bootstrap.container().settings.cors_origins
    cors.add_headers(headers, cors.header(event.get("headers"), "origin"), origins)
    if result.get("body"):
        cors.add_vary(headers, "Accept-Encoding")
    return result


def _is_preflight(event: dict[str, Any], resource: str) -> bool:
    return event.get("httpMethod") == "OPTIONS" and "OPTIONS" not in app.routes[resource]


def _invoke(event: dict[str, Any], context: Any) -> dict[str, Any]:
    per_version()  # the deploy's rollback alarms read the new version's own metrics
    request_context = event.get("requestContext") or {}
    # the correlation id API Gateway gave the request (Powertools' API_GATEWAY_REST
    # path, read as a plain lookup: a JMESPath search cost ~4 % of a cache hit)
    logger.set_correlation_id(request_context.get("requestId"))
    resource = request_context.get("resourcePath")
    result: dict[str, Any]
    if resource is not None and resource not in app.routes:
        result = _not_found_problem(event, event.get("path") or resource)
    elif resource is not None and _is_preflight(event, resource):
        result = _preflight(event, resource)
    else:
        result = app(event, context)
    return _browser_headers(event, result)


def _build_handler() -> Callable[[dict[str, Any], Any], dict[str, Any]]:
    """Powertools around the app; tracing and EMF metrics only where they are on
    (disabled, their decorators would still cost ~50 us per request for nothing)."""
    fn = _invoke
    if METRICS_ON:
        fn = metrics.log_metrics(capture_cold_start_metric=True)(fn)
    if not tracing_disabled():
        fn = tracer.capture_lambda_handler(capture_response=False)(fn)
    wrapped: Callable[[dict[str, Any], Any], dict[str, Any]] = logger.inject_lambda_context(
        clear_state=True
    )(fn)
    return wrapped


handler = _build_handler()
"""The Lambda entry point for API Gateway proxy events."""
