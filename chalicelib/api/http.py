"""HTTP edge shared by the routes: problem+json, body parsing, common headers.

Domain errors become RFC 9457 problem documents in one place (``problem``);
Chalice's own error bodies (405, 415, unhandled 500) are rewritten into the
same shape by the app middleware, so a client only ever sees one error format.
"""

from __future__ import annotations

import json
import math
import re
import sys
import uuid
from typing import Any

from chalice.app import Request, Response

from chalicelib.api.problems import problem_of
from chalicelib.domain.errors import (
    BadRequest,
    DomainError,
    PayloadTooLarge,
    UnsupportedMediaType,
)
from chalicelib.domain.model import json_depth

PROBLEM_JSON = "application/problem+json"
JSON = "application/json"
SECURITY_HEADERS = {
    "Strict-Transport-Security": "max-age=63072000; includeSubDomains",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Content-Security-Policy": "default-src 'none'; frame-ancestors 'none'",
}
# the problem type and title of each status an edge answers by itself (Chalice's
# own errors here, the local server's in devtools/server.py)
STATUS_PROBLEMS = {
    400: ("bad-request", "Bad request"),
    403: ("forbidden", "Forbidden"),
    404: ("not-found", "Not found"),
    405: ("method-not-allowed", "Method not allowed"),
    408: ("request-timeout", "Request timeout"),
    413: ("payload-too-large", "Payload too large"),
    414: ("uri-too-long", "URI too long"),
    415: ("unsupported-media-type", "Unsupported media type"),
    431: ("request-header-fields-too-large", "Request header fields too large"),
    500: ("internal", "Internal error"),
    501: ("not-implemented", "Not implemented"),
    505: ("http-version-not-supported", "HTTP version not supported"),
}


def problem(
    status: int,
    slug: str,
    title: str,
    detail: str,
    *,
    instance: str | None = None,
    errors: list[dict[str, Any]] | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    body: dict[str, Any] = {
        "type": f"/problems/{slug}",
        "title": title,
        "status": status,
        "detail": detail,
        "instance": instance,
    }
    if errors is not None:
        body["errors"] = errors
    return Response(
        body=json.dumps(body, ensure_ascii=False),
        status_code=status,
        headers={"Content-Type": PROBLEM_JSON, "Cache-Control": "no-store", **(headers or {})},
    )


def problem_from_error(exc: DomainError, instance: str | None) -> Response:
    kind = problem_of(exc)
    return problem(
        kind.status,
        kind.slug,
        kind.title,
        exc.detail,
        instance=instance,
        errors=exc.errors,
        headers=exc.headers,
    )


def rewrite_chalice_error(response: Response, instance: str | None) -> Response:
    """Chalice answers some errors itself as ``{"Code", "Message"}``: make them problems."""
    body = response.body
    if not (isinstance(body, dict) and "Code" in body and "Message" in body):
        return response
    slug, title = STATUS_PROBLEMS.get(response.status_code, ("error", "Error"))
    detail = str(body["Message"])
    if response.status_code >= 500:
        detail = "An internal error occurred; it has been logged with this request's id."
    extra = {k: str(v) for k, v in response.headers.items() if k.lower() == "allow"}
    return problem(response.status_code, slug, title, detail, instance=instance, headers=extra)


def server_id(request: Request) -> str:
    """The id API Gateway (or the local server) gave this request: what the audit
    log records, whatever the client sent as X-Request-Id."""
    ctx_id = request.context.get("requestId") if request.context else None
    return str(ctx_id) if ctx_id else str(uuid.uuid4())


def pick_request_id(given: str | None, fallback: str | None = None) -> str:
    """The client's ``X-Request-Id`` when it is acceptable, else ``fallback``, else a new
    uuid.  Shared by the app and the local server's own responses (one rule for both)."""
    return _acceptable(given) or fallback or str(uuid.uuid4())


def _acceptable(given: str | None) -> str | None:
    if given and len(given) <= 200 and given.isprintable():
        return str(given)
    return None


def client_request_id(request: Request) -> str | None:
    """The client's X-Request-Id, when it is one we can echo (for correlation only)."""
    return _acceptable(request.headers.get("x-request-id"))


def request_id(request: Request) -> str:
    """The id a response carries: the client's X-Request-Id if it sent one, else ours."""
    return client_request_id(request) or server_id(request)


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):  # 1e400 parses as infinity
        raise _NotADouble(text)
    return value


def _double_int(text: str) -> int:
    if len(text) > 400:  # past any double, and int() refuses over 4300 digits anyway
        raise _NotADouble(text)
    value = int(text)
    if abs(value) > _MAX_DOUBLE:
        raise _NotADouble(text)
    return value


def _non_finite(text: str) -> Any:
    raise _NotADouble(text)


class _NotADouble(ValueError):
    """A JSON number that is not a finite double: NaN, Infinity, or out of range."""


_MAX_DOUBLE = sys.float_info.max


# NUL and unpaired UTF-16 surrogates parse as JSON (as \u0000, \ud800 escapes)
# but are not text PostgreSQL can store (nor valid UTF-8)
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def _unstorable_text(value: Any) -> bool:
    stack = [value]
    while stack:
        node = stack.pop()
        if isinstance(node, str):
            if _UNSTORABLE.search(node):
                return True
        elif isinstance(node, dict):
            stack.extend(node.keys())
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return False


def media_type(request: Request) -> str:
    raw = request.headers.get("content-type") or JSON
    return raw.split(";", 1)[0].strip().lower()


def parse_json_body(
    request: Request,
    *,
    max_bytes: int,
    max_depth: int,
    allowed: tuple[str, ...] = (JSON,),
    upload_hint: str | None = None,
) -> Any:
    """Parse the request body as JSON within the size and depth limits."""
    mtype = media_type(request)
    if mtype not in allowed:
        raise UnsupportedMediaType(
            f"Content-Type {mtype!r} is not accepted here; use one of: {', '.join(allowed)}."
        )
    raw = request.raw_body or b""
    if len(raw) > max_bytes:
        hint = f" Upload large content with POST {upload_hint}." if upload_hint else ""
        raise PayloadTooLarge(f"The request body is over {max_bytes} bytes.{hint}")
    if not raw.strip():
        raise BadRequest("The request body is empty; send a JSON document.")
    try:
        # numbers must be finite doubles: what JSON (RFC 8259 6) interoperates on,
        # what PostgreSQL and OpenSearch both store, what every client can read back
        value = json.loads(
            raw, parse_float=_finite_float, parse_int=_double_int, parse_constant=_non_finite
        )
    except _NotADouble as exc:
        raise BadRequest(
            f"The JSON holds a number that is not a finite double: {str(exc)[:40]}. "
            "NaN, Infinity and numbers beyond +-1.8e308 are not JSON numbers this API stores."
        ) from None
    except UnicodeDecodeError as exc:
        raise BadRequest(
            f"The request body is not UTF-8 text (an invalid byte at offset {exc.start})."
        ) from None
    except json.JSONDecodeError as exc:
        raise BadRequest(
            f"The request body is not valid JSON: {exc.msg} at line {exc.lineno}, "
            f"column {exc.colno}."
        ) from None
    except ValueError:  # e.g. an integer of more than 4300 digits
        raise BadRequest("The request body is not valid JSON.") from None
    except RecursionError:
        raise BadRequest(f"The JSON is nested deeper than {max_depth} levels.") from None
    if json_depth(value, max_depth) > max_depth:
        raise BadRequest(f"The JSON is nested deeper than {max_depth} levels.")
    if b"\\u" in raw and _unstorable_text(value):  # only escapes can produce them
        raise BadRequest(
            "The JSON holds text that cannot be stored: a NUL character (\\u0000) or an "
            "unpaired surrogate (\\ud800-\\udfff) in a key or string."
        )
    return value


def positive_int(raw: str, name: str) -> int:
    """A path parameter that must be a positive integer (a version number)."""
    try:
        value = int(raw)
    except ValueError:
        raise BadRequest(f"{name} must be a positive integer.") from None
    if value < 1:
        raise BadRequest(f"{name} must be a positive integer.")
    return value


def json_response(
    body: str | dict[str, Any] | list[Any] | None,
    *,
    status: int = 200,
    headers: dict[str, str] | None = None,
) -> Response:
    text = body if isinstance(body, str) or body is None else json.dumps(body, ensure_ascii=False)
    base = {"Content-Type": JSON} if text is not None else {}
    return Response(body=text or "", status_code=status, headers={**base, **(headers or {})})
