"""What every route shares: authenticate, rate-limit, run the view, map domain errors.

A view is a function of one ``Call`` (the request, the verified caller and the
process's container, looked up once) and its path parameters; it parses,
calls a use case and shapes the response.  Errors are domain errors, turned
into problem+json here, once.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from chalice.app import Chalice, Request, Response

from chalicelib import bootstrap
from chalicelib.api.auth import authenticate
from chalicelib.api.http import (
    JSON,
    client_request_id,
    parse_json_body,
    problem,
    problem_from_error,
    request_id,
    server_id,
)
from chalicelib.api.problems import problem_of
from chalicelib.bootstrap import Container
from chalicelib.domain.errors import BadRequest, DomainError, TooManyRequests
from chalicelib.domain.model import IDEMPOTENT_REPLAYED, check_precondition_header
from chalicelib.domain.principal import Principal
from chalicelib.observability import annotate, count, logger

ANY = ["*/*"]  # media types are checked by the views, so errors are problem+json
NO_STORE = {"Cache-Control": "no-store"}
REVALIDATE = {"Cache-Control": "private, no-cache"}


def request_path(request: Request) -> str:
    """The requested path (Chalice's ``request.path`` is the resource template)."""
    return str(request.to_original_event().get("path") or request.path)


@dataclass(frozen=True)
class Call:
    """One authenticated request, as a view sees it."""

    request: Request
    who: Principal
    services: Container
    lambda_context: Any  # the invocation's context (Chalice gives it untyped)

    def header(self, name: str) -> str | None:
        value: str | None = self.request.headers.get(name)
        return value

    @property
    def query(self) -> dict[str, str]:
        return dict(self.request.query_params or {})

    def json(self, allowed: tuple[str, ...] = (JSON,), *, doc_id: str | None = None) -> Any:
        """The JSON body, within the size and depth limits."""
        settings = self.services.settings
        return parse_json_body(
            self.request,
            max_bytes=settings.max_body_bytes,
            max_depth=settings.max_json_depth,
            allowed=allowed,
            upload_hint=f"/documents/{doc_id}/content" if doc_id else "/documents/{id}/content",
        )

    def idempotent(
        self,
        route: str,
        body: Any,
        action: Callable[[], Response],
        *,
        role: str = "writer",
        recheck: Callable[[], None] | None = None,
    ) -> Response:
        """Run a POST under its Idempotency-Key (if any): retries get the first response.

        A replay hands out a stored response, so it is answered only after every
        check a fresh request would pass first: the token (verified before the
        view runs), the org and the caller (keys are scoped to both), the role
        (checked here, every time), and the document permission (``recheck``:
        it raises the 404 or 403 a fresh request would get).  Only then are the
        stored response's personal-data fields opened."""
        who = self.who
        who.require(role)
        key = self.header("idempotency-key")
        if key is None:
            return action()

        # the stored response holds personal-data fields sealed, as the cache does
        pii = self.services.pii

        def run() -> dict[str, Any]:
            response = action()
            return {
                "status": response.status_code,
                "headers": dict(response.headers),
                "body": pii.seal_response(response.body),
            }

        result = self.services.idempotency.run(
            org=who.org, sub=who.sub, route=route, key=key, body=body, action=run,
            context=self.lambda_context,
        )  # fmt: skip
        if recheck is not None and result["headers"].get(IDEMPOTENT_REPLAYED) == "true":
            recheck()
        return Response(
            body=pii.open_rendered(result["body"]) if isinstance(result["body"], str)
            else result["body"],
            status_code=result["status"], headers=result["headers"],
        )  # fmt: skip


View = Callable[..., Response]


def _current(app: Chalice) -> Request:
    """The request ``app`` is answering (Chalice sets it before it calls a view)."""
    request = app.current_request
    assert request is not None, "a view runs only inside a request"
    return request


def endpoint(app: Chalice) -> Callable[[View], View]:
    """An authenticated route of ``app``: the view gets a ``Call`` and the path parameters."""

    def wrap(view: View) -> View:
        @functools.wraps(view)
        def run(**path: str) -> Response:
            request = _current(app)
            limit_headers: dict[str, str] = {}

            def answer() -> Response:
                services = bootstrap.container()
                who = authenticate(
                    request.headers, request.context or {}, services.settings, server_id(request)
                )
                # after authentication: a caller without a valid token learns 401, not
                # what is wrong with the rest of the request
                if_match = request.headers.get("if-match")
                if if_match is not None:
                    check_precondition_header("If-Match", if_match)
                who = replace(who, client_request_id=client_request_id(request))
                logger.append_keys(org=who.org, sub=who.sub)
                annotate(org=who.org, doc_id=path.get("doc_id"))
                limiter = services.rate_limiter
                decision = limiter.check(who.org, who.sub, who.top_role) if limiter else None
                if decision is not None:
                    limit_headers.update(decision.headers())
                    if not decision.allowed:
                        count("RateLimited")
                        raise TooManyRequests(
                            f"Rate limit of {decision.limit} requests exceeded; "
                            f"retry in {decision.retry_after_s} s.",
                            headers=dict(limit_headers),
                        )
                return view(Call(request, who, services, app.lambda_context), **path)

            response = _answer(request, answer)
            response.headers.update({k: v for k, v in limit_headers.items() if k != "Retry-After"})
            return response

        return run

    return wrap


def public(app: Chalice) -> Callable[[Callable[[], Response]], View]:
    """A route of ``app`` anyone may call (no token, no rate limit)."""

    def wrap(view: Callable[[], Response]) -> View:
        @functools.wraps(view)
        def run() -> Response:
            return _answer(_current(app), view)

        return run

    return wrap


def _answer(request: Request, view: Callable[[], Response]) -> Response:
    """Run the view; domain errors become problems, anything else a 500 without a stack."""
    rid = request_id(request)
    try:
        query: dict[str, str] = dict(request.query_params or {})
        if any("\x00" in v for v in query.values()):
            raise BadRequest("Query parameters must not contain NUL characters.")
        return view()
    except DomainError as exc:
        if problem_of(exc).status >= 500:
            logger.warning("dependency unavailable", exc_info=exc)
            count("DependencyErrors")
        return problem_from_error(exc, request_path(request))
    except Exception:  # a bug: log it with its stack, answer without one
        logger.exception("unhandled error", request_id=rid)
        return problem(
            500,
            "internal",
            "Internal error",
            f"An internal error occurred; it was logged with request id {rid}.",
            instance=request_path(request),
        )
