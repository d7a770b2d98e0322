"""Browsers: CORS from an allowlist of origins, and what compression needs to know.

One rule for the app, the local server's own answers and the WebSocket
handshakes: an ``Origin`` exactly on the list (``DOCS_CORS_ORIGINS``; empty by
default) gets ``Access-Control-Allow-Origin`` echoing it and the exposed
headers; any other origin gets no CORS header at all, so the browser withholds
the answer from its page.  Every answer says ``Vary: Origin`` while a list is
set (the same URL answers differently per origin).  A preflight (``OPTIONS``)
from an allowed origin is a 204 with the allowed methods and headers; from any
other origin a 403 problem without CORS headers (the browser then refuses the
request, and a person with curl reads why).  Tokens travel in
``Authorization``, never in cookies, so credentials are never allowed.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, MutableMapping

from chalicelib.domain.errors import Forbidden

# what a page's script may read of an answer (besides the CORS-safelisted ones)
EXPOSE_HEADERS = (
    "ETag, Location, X-Request-Id, Retry-After, "
    "RateLimit-Limit, RateLimit-Remaining, RateLimit-Reset"
)
# what a page may send beyond the safelisted request headers
ALLOW_HEADERS = (
    "Authorization, Content-Type, If-Match, If-None-Match, Idempotency-Key, X-Request-Id"
)
MAX_AGE_S = 600  # how long a browser may reuse a preflight's answer
# JSON bodies of at least this many bytes are gzipped for a client that accepts it
# (the local server; API Gateway's MinimumCompressionSize in template.yaml)
COMPRESSION_MIN_BYTES = 1024


def normal(origin: str) -> str:
    """An origin as the allowlist holds it (chalicelib/config.py normalises the same way)."""
    return origin.strip().rstrip("/").lower()


def header(headers: Mapping[str, str] | None, name: str) -> str | None:
    """A request header, whatever its case."""
    name = name.lower()
    for key, value in (headers or {}).items():
        if key.lower() == name:
            return str(value)
    return None


def allowed(origin: str | None, origins: tuple[str, ...]) -> bool:
    """``origin`` is on the list (``null`` and ``*`` never are)."""
    return origin is not None and normal(origin) in origins and normal(origin) not in ("null", "*")


def check_origin(origin: str | None, origins: tuple[str, ...]) -> None:
    """A WebSocket handshake's ``Origin``: a browser on another origin is refused
    (``Forbidden``, 403); a client without ``Origin`` (not a browser) may connect."""
    if origin is not None and not allowed(origin, origins):
        raise Forbidden("This origin may not open the WebSocket (DOCS_CORS_ORIGINS).")


def add_vary(headers: MutableMapping[str, str], token: str) -> None:
    """Add ``token`` to ``Vary`` once, keeping what is there."""
    key = next((k for k in headers if k.lower() == "vary"), "Vary")
    present = [t.strip() for t in headers.get(key, "").split(",") if t.strip()]
    if token.lower() not in (t.lower() for t in present):
        headers[key] = ", ".join([*present, token])


def add_headers(
    headers: MutableMapping[str, str], origin: str | None, origins: tuple[str, ...]
) -> None:
    """An actual (not preflight) answer's CORS headers, for ``origin``."""
    if not origins:
        return
    add_vary(headers, "Origin")
    if allowed(origin, origins):
        headers["Access-Control-Allow-Origin"] = str(origin)
        headers["Access-Control-Expose-Headers"] = EXPOSE_HEADERS


def preflight(
    origin: str | None, methods: Iterable[str], origins: tuple[str, ...]
) -> tuple[int, dict[str, str]]:
    """The status and headers of an ``OPTIONS`` answer on a path serving ``methods``:
    204 with ``Allow`` (and, for an allowed origin, the CORS headers); 403 for an
    origin not on the list."""
    served = ", ".join(sorted({m.upper() for m in methods} | {"OPTIONS"}))
    headers = {"Allow": served, "Cache-Control": "no-store"}
    if origin is None:  # not a browser's preflight: just what the path serves
        return 204, headers
    add_vary(headers, "Origin")
    if not allowed(origin, origins):
        return 403, headers
    headers.update(
        {
            "Access-Control-Allow-Origin": origin,
            "Access-Control-Allow-Methods": served,
            "Access-Control-Allow-Headers": ALLOW_HEADERS,
            "Access-Control-Max-Age": str(MAX_AGE_S),
        }
    )
    return 204, headers
