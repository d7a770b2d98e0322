"""Credentials out of every log line: one ``redact`` for URLs, headers, events and text.

Tokens reach a log in a few shapes, all handled here:

* a URL's query parameter (``/realtime?token=eyJ...``, a presigned URL's
  ``X-Amz-Signature``): the value of any parameter whose name says it carries
  a credential (``token``, ``access_token``, ``id_token``, ``secret``,
  ``password``, ``signature``, ``credential``, ``api_key``, ...);
* a header (``Authorization``, ``Cookie``, ``Sec-WebSocket-Protocol`` with its
  ``bearer.<JWT>`` subprotocol, ``X-Api-Key``, ...): the whole value;
* a key of a structured record (a Lambda event's ``headers`` and
  ``queryStringParameters``, a log call's ``extra``) with such a name;
* free text (an exception's message, a request line): anything that looks like
  a JWT (``eyJ...``: base64url of ``{"``), a bearer token (``Bearer ...``,
  ``bearer.<token>``), an ``Authorization:`` or ``Cookie:`` line, ``name=value`` pairs as above.

``redact`` keeps everything else as it was, so a log line still says which
request it was about.  The local server's request log, the real-time hub's log
and the Powertools logger every Lambda function and the app log through
(``chalicelib.observability``) all pass their records through it.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from typing import Any

REDACTED = "[redacted]"

# a name (query parameter, header, record key) that carries a credential
_CREDENTIAL_NAME = re.compile(
    r"token|secret|passw(?:or)?d|signature|credential|api[-_]?key|authori[sz]ation|jwt|cookie"
    r"|sec[-_]websocket[-_]protocol|^(?:auth|sig|bearer|session)$",
    re.IGNORECASE,
)
# base64url of '{"' starts every JWS/JWE header: any such run, with its other parts
_JWT = re.compile(r"eyJ[A-Za-z0-9_\-+/=]*(?:\.[A-Za-z0-9_\-+/=]*)*")
_BEARER = re.compile(r"\b(bearer)([ .:=]+)[A-Za-z0-9._~+/=\-]+", re.IGNORECASE)
_HEADER_LINE = re.compile(
    r"\b((?:proxy-)?authorization|cookie|set-cookie|x-api-key|sec-websocket-protocol)"
    r"(\s*:\s*)[^\r\n\"']+",
    re.IGNORECASE,
)
_HEADER_NAMES = ("authoriz", "authoris", "cookie", "x-api-key", "sec-websocket-protocol")
_PAIR = re.compile(r"([A-Za-z0-9_.\-\[\]]+)=([^&#\s\"'<>,;]+)")


@functools.lru_cache(maxsize=4096)  # log records repeat the same few keys on every line
def is_credential_name(name: str) -> bool:
    """Whether a query parameter, header or record key carries a credential."""
    return _CREDENTIAL_NAME.search(name) is not None


def redact(value: Any) -> Any:
    """``value`` with every credential replaced by ``[redacted]``: strings by the
    text rules, mappings by key (a credential key's whole value) and then by
    value, lists and tuples item by item; anything else unchanged."""
    if isinstance(value, str):
        return _redact_text(value)
    if isinstance(value, Mapping):
        return {
            key: REDACTED if isinstance(key, str) and is_credential_name(key) else redact(item)
            for key, item in value.items()
        }
    if isinstance(value, (list, tuple)):
        return [redact(item) for item in value]
    return value


def _redact_text(text: str) -> str:
    # each rule runs only where its marker occurs: most log values (ids, times) have none
    if "eyJ" in text:
        text = _JWT.sub(REDACTED, text)
    lower = text.lower()
    if any(name in lower for name in _HEADER_NAMES):
        text = _HEADER_LINE.sub(lambda m: f"{m[1]}{m[2]}{REDACTED}", text)
    if "bearer" in lower:
        text = _BEARER.sub(lambda m: f"{m[1]}{m[2]}{REDACTED}", text)
    if "=" in text:
        text = _PAIR.sub(lambda m: f"{m[1]}={REDACTED}" if is_credential_name(m[1]) else m[0], text)
    return text
