"""Opaque, tamper-evident page tokens (keyset cursors, never offsets)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from typing import Any

from chalicelib.domain.errors import BadRequest


def encode_token(cursor: dict[str, Any], secret: str) -> str:
    raw = json.dumps(cursor, separators=(",", ":"), sort_keys=True).encode()
    sig = hmac.new(secret.encode(), raw, hashlib.sha256).digest()[:12]
    return _b64(raw) + "." + _b64(sig)


def decode_token(token: str | None, secret: str) -> dict[str, Any] | None:
    if token is None or token == "":
        return None
    try:
        raw_part, sig_part = token.split(".", 1)
        raw, sig = _unb64(raw_part), _unb64(sig_part)
        expected = hmac.new(secret.encode(), raw, hashlib.sha256).digest()[:12]
        if not hmac.compare_digest(sig, expected):
            raise ValueError("signature")
        cursor = json.loads(raw)
        if not isinstance(cursor, dict):
            raise ValueError("shape")
        return cursor
    except (ValueError, UnicodeDecodeError):
        raise BadRequest(
            "page_token is not valid; use the next_page_token of a response."
        ) from None


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
