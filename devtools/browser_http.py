"""The local server's answers to browsers: CORS headers and gzip.

Every answer the local server writes (the app's, and its own early errors)
passes through ``finish``: the CORS headers of chalicelib/api/cors.py for an
allowed ``Origin`` (the app has set them on its own answers already; the
server's answers get them here), and, like API Gateway's
``MinimumCompressionSize``, a JSON or text body of at least
``COMPRESSION_MIN_BYTES`` gzipped for a client whose ``Accept-Encoding``
takes gzip, with ``Vary: Accept-Encoding``.  The ``ETag`` is left as the app
made it: it names the document's version, whatever the encoding
(docs/api.md, Browsers).
"""

from __future__ import annotations

import gzip

from chalicelib.api.cors import COMPRESSION_MIN_BYTES, add_headers, add_vary

GZIP_LEVEL = 5  # most of level 9's savings on JSON for a fraction of its time


def gzip_accepted(accept_encoding: str | None) -> bool:
    """``Accept-Encoding`` takes gzip: named (or ``*``) with a non-zero quality."""
    quality: dict[str, float] = {}
    for item in (accept_encoding or "").split(","):
        coding, *params = (part.strip() for part in item.split(";"))
        q = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        if coding:
            quality[coding.lower()] = q
    return quality.get("gzip", quality.get("x-gzip", quality.get("*", 0.0))) > 0


def _compressible(headers: dict[str, str]) -> bool:
    lowered = {k.lower(): v for k, v in headers.items()}
    if "content-encoding" in lowered:
        return False
    media = lowered.get("content-type", "").split(";", 1)[0].strip().lower()
    return media in ("application/json", "text/csv") or media.endswith("+json")


def finish(
    headers: dict[str, str],
    body: bytes,
    *,
    origin: str | None,
    accept_encoding: str | None,
    origins: tuple[str, ...],
) -> tuple[dict[str, str], bytes]:
    """The headers and body to write for this request."""
    headers = dict(headers)
    add_headers(headers, origin, origins)
    if len(body) >= COMPRESSION_MIN_BYTES and _compressible(headers):
        add_vary(headers, "Accept-Encoding")
        if gzip_accepted(accept_encoding):
            body = gzip.compress(body, compresslevel=GZIP_LEVEL, mtime=0)
            headers["Content-Encoding"] = "gzip"
    return headers, body
