"""The API Lambda: Chalice routes only — parse, call a service, shape the response.

``handler`` is what Lambda (and the local server) invokes: Powertools wraps
the Chalice app with request-scoped logging, tracing and metrics.
"""

from __future__ import annotations

import functools
import os
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from aws_lambda_powertools.logging import correlation_paths
from chalice.app import Chalice, Request, Response

from chalicelib import bootstrap
from chalicelib.auth import authenticate
from chalicelib.domain.errors import BadRequest, DomainError, TooManyRequests
from chalicelib.domain.model import check_precondition_header, idempotent_id, parse_limit
from chalicelib.domain.patching import PATCH_MEDIA_TYPES
from chalicelib.domain.principal import Principal
from chalicelib.http import (
    JSON,
    SECURITY_HEADERS,
    client_request_id,
    json_response,
    media_type,
    parse_json_body,
    pick_request_id,
    problem,
    problem_from_error,
    request_id,
    rewrite_chalice_error,
    server_id,
)
from chalicelib.observability import (
    METRICS_ON,
    count,
    gauge,
    logger,
    metrics,
    milliseconds,
    tracer,
    tracing_disabled,
)
from chalicelib.openapi import openapi_document

app = Chalice(app_name="docs-service")
app.log.disabled = True  # Powertools logs; Chalice's own logger would double every error
ANY = ["*/*"]  # media types are checked by the views, so errors are problem+json
ACCEPT_PATCH = ", ".join(PATCH_MEDIA_TYPES)
NO_STORE = {"Cache-Control": "no-store"}
REVALIDATE = {"Cache-Control": "private, no-cache"}


def _request() -> Request:
    request = app.current_request
    assert request is not None
    return request


def _path(request: Request) -> str:
    """The requested path (Chalice's ``request.path`` is the resource template)."""
    return str(request.to_original_event().get("path") or request.path)


def endpoint(*, auth: bool = True) -> Callable[[Callable[..., Response]], Callable[..., Response]]:
    """Authenticate, run the view, map domain errors to problem+json."""

    def wrap(view: Callable[..., Response]) -> Callable[..., Response]:
        @functools.wraps(view)
        def run(**path: str) -> Response:
            request = _request()
            rid = request_id(request)
            limit_headers: dict[str, str] = {}
            try:
                query: dict[str, str] = dict(request.query_params or {})
                if any("\x00" in v for v in query.values()):
                    raise BadRequest("Query parameters must not contain NUL characters.")
                if not auth:
                    return view(**path)
                if_match = request.headers.get("if-match")
                if if_match is not None:
                    check_precondition_header("If-Match", if_match)
                container = bootstrap.container()
                who = authenticate(
                    request.headers, request.context or {}, container.settings, server_id(request)
                )
                who = replace(who, client_request_id=client_request_id(request))
                logger.append_keys(org=who.org, sub=who.sub)
                limiter = container.rate_limiter
                decision = limiter.check(who.org, who.sub, who.top_role) if limiter else None
                if decision is not None:
                    limit_headers = decision.headers()
                    if not decision.allowed:
                        count("RateLimited")
                        raise TooManyRequests(
                            f"Rate limit of {decision.limit} requests exceeded; "
                            f"retry in {decision.retry_after_s} s.",
                            headers=limit_headers,
                        )
                response = view(who, **path)
            except DomainError as exc:
                if exc.status >= 500:
                    logger.warning("dependency unavailable", exc_info=exc)
                    count("DependencyErrors")
                response = problem_from_error(exc, _path(request))
            except Exception:  # a bug: log it with its stack, answer without one
                logger.exception("unhandled error", request_id=rid)
                response = problem(
                    500,
                    "internal",
                    "Internal error",
                    f"An internal error occurred; it was logged with request id {rid}.",
                    instance=_path(request),
                )
            response.headers.update({k: v for k, v in limit_headers.items() if k != "Retry-After"})
            return response

        return run

    return wrap


@app.middleware("http")
def edge(event: Request, get_response: Callable[[Request], Response]) -> Response:
    """Every response: problem+json for Chalice's own errors, request id, security headers."""
    started = time.perf_counter()
    rid = request_id(event)
    response = rewrite_chalice_error(get_response(event), _path(event))
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
        # a gauge (1 open or half-open, 0 closed) the breaker alarm reads with Maximum
        gauge("CacheBreakerOpen", float(bootstrap.container().cache.status() == "degraded"))
    logger.debug(
        "request",
        method=event.method,
        path=event.path,
        status=response.status_code,
        ms=round(ms, 2),
    )
    return response


def _doc_headers(
    etag: str, *, cache: str | None = None, location: str | None = None
) -> dict[str, str]:
    headers = {"ETag": etag, **REVALIDATE}
    if cache:
        headers["X-Cache"] = cache
    if location:
        headers["Location"] = location
    return headers


def _body(request: Request, allowed: tuple[str, ...] = (JSON,), doc_id: str | None = None) -> Any:
    settings = bootstrap.container().settings
    return parse_json_body(
        request,
        max_bytes=settings.max_body_bytes,
        max_depth=settings.max_json_depth,
        allowed=allowed,
        upload_hint=f"/documents/{doc_id}/content" if doc_id else "/documents/{id}/content",
    )


def _int(raw: str, name: str) -> int:
    try:
        value = int(raw)
    except ValueError:
        raise BadRequest(f"{name} must be a positive integer.") from None
    if value < 1:
        raise BadRequest(f"{name} must be a positive integer.")
    return value


# ---------------------------------------------------------------- documents
def _idempotent(
    who: Principal, route: str, body: Any, action: Callable[[], Response], *, role: str = "writer"
) -> Response:
    """Run a POST under its Idempotency-Key (if any): retries get the first response.

    The caller's role is checked first, every time: a replay hands out a stored
    response, and a caller who lost the right to make the request since must
    not get it."""
    who.require(role)
    key = _request().headers.get("idempotency-key")
    if key is None:
        return action()

    def run() -> dict[str, Any]:
        response = action()
        return {
            "status": response.status_code,
            "headers": dict(response.headers),
            "body": response.body,
        }

    result = bootstrap.container().idempotency.run(
        org=who.org, sub=who.sub, route=route, key=key, body=body, action=run,
        context=app.lambda_context,
    )  # fmt: skip
    return Response(body=result["body"], status_code=result["status"], headers=result["headers"])


@app.route("/documents", methods=["POST"], content_types=ANY)
@endpoint()
def create_document(who: Principal) -> Response:
    body = _body(_request())

    key = _request().headers.get("idempotency-key")

    def create() -> Response:
        # with a key, the id comes from it: a retry after an unknown commit outcome
        # (a 503 while committing) finds the first attempt's document
        doc_id = idempotent_id(who.org, who.sub, key) if key else None
        doc = bootstrap.container().documents.create(who, body, doc_id=doc_id, replay=bool(key))
        count("DocumentChanges")
        return json_response(
            doc.to_json(),
            status=201,
            headers=_doc_headers(doc.etag, location=f"/documents/{doc.id}"),
        )

    return _idempotent(who, "POST /documents", body, create)


@app.route("/documents:batch", methods=["POST"], content_types=ANY)
@endpoint()
def create_documents_batch(who: Principal) -> Response:
    """Up to 100 documents; each succeeds or fails on its own (bulkhead pool)."""
    body = _body(_request())
    items = body.get("documents") if isinstance(body, dict) else None

    def create_all() -> Response:
        results = bootstrap.container().bulk_documents.create_many(who, items)
        created = sum(1 for r in results if r["status"] == 201)
        count("DocumentChanges", created)
        return json_response({"results": results}, status=207 if created < len(results) else 200)

    return _idempotent(who, "POST /documents:batch", body, create_all)


@app.route("/documents", methods=["GET"], content_types=ANY)
@endpoint()
def list_documents(who: Principal) -> Response:
    params: dict[str, str] = dict(_request().query_params or {})
    page, cache = bootstrap.container().documents.list_documents(
        who,
        limit=parse_limit(params.get("limit")),
        page_token=params.get("page_token"),
        tag=params.get("tag"),
    )
    return json_response(page, headers={"X-Cache": cache, **REVALIDATE})


@app.route("/documents/{doc_id}", methods=["GET"], content_types=ANY)
@endpoint()
def get_document(who: Principal, doc_id: str) -> Response:
    request = _request()
    rendered = bootstrap.container().documents.get(
        who, doc_id, if_none_match=request.headers.get("if-none-match")
    )
    count("CacheHits" if rendered.cache == "hit" else "CacheMisses")
    headers = {**_doc_headers(rendered.etag, cache=rendered.cache), "Accept-Patch": ACCEPT_PATCH}
    if rendered.not_modified:
        return Response(body="", status_code=304, headers=dict(headers))
    return json_response(rendered.body, headers=headers)


@app.route("/documents/{doc_id}", methods=["PUT"], content_types=ANY)
@endpoint()
def put_document(who: Principal, doc_id: str) -> Response:
    request = _request()
    doc, created = bootstrap.container().documents.put(
        who,
        doc_id,
        _body(request, doc_id=doc_id),
        if_match=request.headers.get("if-match"),
        if_none_match=request.headers.get("if-none-match"),
    )
    count("DocumentChanges")
    return json_response(
        doc.to_json(),
        status=201 if created else 200,
        headers=_doc_headers(doc.etag, location=f"/documents/{doc.id}" if created else None),
    )


def _change(who: Principal, doc_id: str, mtype: str, patch: Any) -> Response:
    doc = bootstrap.container().documents.change(
        who, doc_id, mtype, patch, if_match=_request().headers.get("if-match")
    )
    count("DocumentChanges")
    return json_response(doc.to_json(), headers=_doc_headers(doc.etag))


def _patch_input(doc_id: str) -> tuple[str, Any]:
    request = _request()
    return media_type(request), _body(request, allowed=PATCH_MEDIA_TYPES, doc_id=doc_id)


@app.route("/documents/{doc_id}/changes", methods=["POST"], content_types=ANY)
@endpoint()
def post_changes(who: Principal, doc_id: str) -> Response:
    mtype, patch = _patch_input(doc_id)
    body = {
        "doc": doc_id,
        "type": mtype,
        "if_match": _request().headers.get("if-match"),
        "patch": patch,
    }
    return _idempotent(
        who, "POST /documents/{id}/changes", body, lambda: _change(who, doc_id, mtype, patch)
    )


@app.route("/documents/{doc_id}", methods=["PATCH"], content_types=ANY)
@endpoint()
def patch_document(who: Principal, doc_id: str) -> Response:
    mtype, patch = _patch_input(doc_id)
    response = _change(who, doc_id, mtype, patch)
    response.headers["Accept-Patch"] = ACCEPT_PATCH
    return response


@app.route("/documents/{doc_id}", methods=["DELETE"], content_types=ANY)
@endpoint()
def delete_document(who: Principal, doc_id: str) -> Response:
    bootstrap.container().documents.delete(who, doc_id, if_match=_request().headers.get("if-match"))
    count("DocumentChanges")
    return Response(body="", status_code=204, headers=dict(NO_STORE))


@app.route("/documents/{doc_id}/restore", methods=["POST"], content_types=ANY)
@endpoint()
def restore_document(who: Principal, doc_id: str) -> Response:
    doc = bootstrap.container().documents.restore(who, doc_id)
    return json_response(doc.to_json(), headers=_doc_headers(doc.etag))


@app.route("/documents/{doc_id}/versions", methods=["GET"], content_types=ANY)
@endpoint()
def list_versions(who: Principal, doc_id: str) -> Response:
    params: dict[str, str] = dict(_request().query_params or {})
    page = bootstrap.container().documents.list_versions(
        who, doc_id, limit=parse_limit(params.get("limit")), page_token=params.get("page_token")
    )
    return json_response(
        {"items": page.items, "next_page_token": page.next_page_token}, headers=REVALIDATE
    )


@app.route("/documents/{doc_id}/versions/{n}", methods=["GET"], content_types=ANY)
@endpoint()
def get_version(who: Principal, doc_id: str, n: str) -> Response:
    version = bootstrap.container().documents.get_version(who, doc_id, _int(n, "version"))
    # an old version never changes: it may be cached by the client for long
    return json_response(
        version,
        headers={"ETag": version["etag"], "Cache-Control": "private, max-age=86400, immutable"},
    )


@app.route("/documents/{doc_id}/versions/{n}/restore", methods=["POST"], content_types=ANY)
@endpoint()
def restore_version(who: Principal, doc_id: str, n: str) -> Response:
    doc = bootstrap.container().documents.restore_version(
        who, doc_id, _int(n, "version"), if_match=_request().headers.get("if-match")
    )
    count("DocumentChanges")
    return json_response(doc.to_json(), headers=_doc_headers(doc.etag))


# ---- content: large content goes straight to/from S3 via presigned URLs
@app.route("/documents/{doc_id}/content", methods=["POST"], content_types=ANY)
@endpoint()
def start_content_upload(who: Principal, doc_id: str) -> Response:
    request = _request()
    body = _body(request, doc_id=doc_id)
    if_match = request.headers.get("if-match")

    def start() -> Response:
        ticket = bootstrap.container().content.start_upload(who, doc_id, body, if_match=if_match)
        count("DocumentChanges")
        return json_response(ticket.to_json(), headers={"ETag": ticket.document.etag, **NO_STORE})

    key_body = {"doc": doc_id, "if_match": if_match, "body": body}
    return _idempotent(who, "POST /documents/{id}/content", key_body, start)


def _content_response(who: Principal, doc_id: str, version: int | None) -> Response:
    """302 to a short-lived presigned GET; HEAD answers with the size and SHA-256 only."""
    download = bootstrap.container().content.download(who, doc_id, version)
    content = download.content
    headers: dict[str, str | list[str]] = {
        "X-Content-Size": str(content.get("size")),
        "X-Content-Sha256": str(content.get("sha256")),
        "X-Content-Type": str(content.get("content_type")),
        **NO_STORE,
    }
    sha = content.get("sha256")
    if isinstance(sha, str) and sha:
        import base64

        headers["Repr-Digest"] = f"sha-256=:{base64.b64encode(bytes.fromhex(sha)).decode()}:"
    if _request().method == "HEAD":
        return Response(body="", status_code=200, headers=headers)
    return Response(body="", status_code=302, headers={**headers, "Location": download.url})


@app.route("/documents/{doc_id}/content", methods=["GET", "HEAD"], content_types=ANY)
@endpoint()
def get_content(who: Principal, doc_id: str) -> Response:
    return _content_response(who, doc_id, None)


@app.route("/documents/{doc_id}/versions/{n}/content", methods=["GET", "HEAD"], content_types=ANY)
@endpoint()
def get_version_content(who: Principal, doc_id: str, n: str) -> Response:
    return _content_response(who, doc_id, _int(n, "version"))


# ------------------------------------------------------------------ search
@app.route("/search", methods=["POST"], content_types=ANY)
@endpoint()
def search(who: Principal) -> Response:
    """Full-text search in the caller's org; never cached (the index moves on)."""
    result = bootstrap.container().search.search(who, _body(_request()))
    return json_response(result, headers=dict(NO_STORE))


@app.route("/changes", methods=["GET"], content_types=ANY)
@endpoint()
def changes(who: Principal) -> Response:
    """The org's changes feed: ``since`` a cursor (or 0, or now), optional long-poll."""
    params: dict[str, str] = dict(_request().query_params or {})
    c = bootstrap.container()
    feed = params.get("feed", "normal")
    if feed not in ("normal", "longpoll"):
        raise BadRequest("feed must be 'normal' or 'longpoll'.")
    raw = params.get("timeout", str(c.settings.changes_longpoll_max_s))
    try:
        wait = float(raw)
    except ValueError:
        raise BadRequest("timeout must be a number of seconds.") from None
    if not 0 <= wait <= c.settings.changes_longpoll_max_s:  # (NaN fails this too)
        raise BadRequest(f"timeout must be 0 to {c.settings.changes_longpoll_max_s} seconds.")
    if feed != "longpoll":
        wait = 0.0
    result = c.search.changes(
        who,
        since=params.get("since"),
        limit=parse_limit(params.get("limit"), default=100, maximum=1000),
        longpoll_s=wait,
    )
    return json_response(result, headers=dict(NO_STORE))


# ------------------------------------------------------------------ service
_CHECKS: dict[str, tuple[float, Any]] = {}  # name -> (when, result), per process


def _checked_recently(name: str, probe: Callable[[], Any]) -> Any:
    """``probe()``, run at most every 10 s per process (/health is public: a flood
    of health requests must not become a flood of dependency calls)."""
    now = time.monotonic()
    at, result = _CHECKS.get(name, (-1e9, None))
    if now - at > 10:
        result = probe()
        _CHECKS[name] = (now, result)
    return result


def _search_check(c: bootstrap.Container) -> tuple[str, float | None]:
    """OpenSearch reachability and the sync lag."""
    if not c.settings.opensearch_url:
        return "skipped", None

    def probe() -> tuple[str, float | None]:
        status = "ok" if c.search_index.ping() else "down"
        try:
            return status, round(c.outbox.stats()["lag_s"], 3)
        except DomainError:
            return status, None

    result: tuple[str, float | None] = _checked_recently("search", probe)
    return result


def _s3_check(c: bootstrap.Container) -> str:
    """S3 reachability; 'skipped' where no S3 is configured (no local endpoint, not on Lambda)."""
    if not (c.settings.aws_endpoint_url or os.environ.get("AWS_LAMBDA_FUNCTION_NAME")):
        return "skipped"

    def probe() -> str:
        try:
            c.content.blobs.ping()
        except DomainError:
            return "down"
        return "ok"

    return str(_checked_recently("s3", probe))


@app.route("/health", methods=["GET"], content_types=ANY)
@endpoint(auth=False)
def health() -> Response:
    c = bootstrap.container()
    checks: dict[str, str] = {}
    try:
        c.uow.ping()
        checks["postgres"] = "ok"
    except DomainError:
        checks["postgres"] = "down"
    ping = getattr(c.cache, "ping", None)
    status = c.cache.status()
    if ping is not None and status != "disabled":
        status = "ok" if ping() else "degraded"  # this request's own view of Redis
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


@app.route("/openapi.json", methods=["GET"], content_types=ANY)
@endpoint(auth=False)
def openapi() -> Response:
    return json_response(openapi_document(), headers={"Cache-Control": "public, max-age=300"})


def _not_found_problem(event: dict[str, Any], path: str) -> dict[str, Any]:
    """A path the app has no route for (API Gateway would not send it; the local
    server and tests might), with the headers every response carries."""
    response = problem(404, "not-found", "Not found", f"No route for {path}.", instance=path)
    response.headers.update(SECURITY_HEADERS)
    headers = event.get("headers") or {}
    given = next((v for k, v in headers.items() if k.lower() == "x-request-id"), None)
    context_id = (event.get("requestContext") or {}).get("requestId")
    response.headers["X-Request-Id"] = pick_request_id(given, context_id)
    return response.to_dict()


def _invoke(event: dict[str, Any], context: Any) -> dict[str, Any]:
    resource = (event.get("requestContext") or {}).get("resourcePath")
    if resource is not None and resource not in app.routes:
        return _not_found_problem(event, event.get("path") or resource)
    result: dict[str, Any] = app(event, context)
    return result


def _build_handler() -> Callable[[dict[str, Any], Any], dict[str, Any]]:
    """Powertools around the app; tracing and EMF metrics only where they are on
    (disabled, their decorators would still cost ~50 us per request for nothing)."""
    fn = _invoke
    if METRICS_ON:
        fn = metrics.log_metrics(capture_cold_start_metric=True)(fn)
    if not tracing_disabled():
        fn = tracer.capture_lambda_handler(capture_response=False)(fn)
    wrapped: Callable[[dict[str, Any], Any], dict[str, Any]] = logger.inject_lambda_context(
        correlation_id_path=correlation_paths.API_GATEWAY_REST, clear_state=True
    )(fn)
    return wrapped


handler = _build_handler()
"""The Lambda entry point for API Gateway proxy events."""
