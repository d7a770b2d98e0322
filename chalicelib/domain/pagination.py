"""Opaque page tokens (keyset cursors, never offsets), sealed and bound to their query.

A page token is a ``Sealer`` value (domain/sealed.py: AES-256-GCM under a key
derived from the page-token secret for this purpose alone, a fresh nonce per
token): a client can neither read the position it holds nor forge one.  Its
plaintext also carries the *scope* it was issued for, a digest of the org, the
endpoint (with the document, for a document's own lists) and the query's
filters (``page_scope``).  A token comes back only with the same scope: one of
another org, another endpoint, another document or other filters is a 400,
never a silent first page; a changed byte or another secret is a 400 too.
Pure: no I/O, so checking a token costs no round trip.
"""

from __future__ import annotations

import hashlib
import json
from functools import lru_cache
from typing import Any

from chalicelib.domain.errors import BadRequest
from chalicelib.domain.sealed import Sealer

PAGE_TOKEN_PURPOSE = "page-token"  # noqa: S105 - a key-derivation label, not a secret
NOT_VALID = "page_token is not valid; use the next_page_token of a response."
NOT_THIS_QUERY = (
    "page_token does not belong to this query; repeat the request that returned it "
    "(same path and filters), or start again without a page_token."
)


def page_scope(org: str, endpoint: str, **query: Any) -> str:
    """The digest a page token is bound to: ``org``, ``endpoint`` and every filter
    that shapes the result (not the page size).  ``query`` values are JSON."""
    raw = json.dumps([org, endpoint, query], sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(raw.encode("utf-8", "surrogatepass")).hexdigest()[:32]


@lru_cache(maxsize=4)
def _sealer(secret: str) -> Sealer:
    return Sealer(secret, PAGE_TOKEN_PURPOSE)


def encode_token(cursor: dict[str, Any], secret: str, scope: str) -> str:
    """``cursor`` sealed for ``scope`` (``page_scope``)."""
    raw = json.dumps([scope, cursor], separators=(",", ":"), sort_keys=True).encode()
    return _sealer(secret).seal(raw, "")


def decode_token(
    token: str | None, secret: str, scope: str, *, mismatch: str = NOT_THIS_QUERY
) -> dict[str, Any] | None:
    """The cursor of a token this server sealed for ``scope``; None for no token.

    BadRequest (400) for anything else: ``NOT_VALID`` when it is not a token of
    ours at all, ``mismatch`` when it is one issued for another scope."""
    if token is None or token == "":
        return None
    try:
        bound, cursor = json.loads(_sealer(secret).unseal(token, ""))
        if not isinstance(bound, str) or not isinstance(cursor, dict):
            raise ValueError("shape")
    except (ValueError, TypeError, UnicodeDecodeError):
        raise BadRequest(NOT_VALID) from None
    if bound != scope:
        raise BadRequest(mismatch)
    return cursor
