"""What an upload may be: the policy it is held to, and the validated request."""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from chalicelib.domain.errors import PayloadTooLarge, UnsupportedMediaType, ValidationFailed

DEFAULT_ALLOWED_TYPES = (
    "text/plain",
    "text/markdown",
    "text/csv",
    "text/html",
    "application/json",
    "application/pdf",
)
TEXT_TYPES = frozenset({"text/plain", "text/markdown", "text/csv", "text/html", "application/json"})
# all matched with ``fullmatch``: ``$`` would also match before a trailing newline
_HEX64 = re.compile(r"[0-9a-fA-F]{64}")
_MEDIA_TYPE = re.compile(r"[a-z0-9][a-z0-9!#$&^_.+-]*/[a-z0-9][a-z0-9!#$&^_.+-]*")


@dataclass(frozen=True)
class ContentPolicy:
    """The limits an upload is held to (from settings, frozen into each upload)."""

    max_bytes: int = 5 * 1024**3
    allowed_types: tuple[str, ...] = DEFAULT_ALLOWED_TYPES
    text_max_chars: int = 1_000_000
    pdf_spool_max_bytes: int = 256 * 1024**2
    spool_dir: str | None = None


@dataclass(frozen=True)
class UploadRequest:
    """A validated ``POST /documents/{id}/content`` body."""

    content_type: str
    sha256: str | None = None  # lowercase hex
    size: int | None = None
    filename: str | None = None


def normalize_media_type(raw: str) -> str:
    return raw.split(";", 1)[0].strip().lower()


def normalize_sha256(raw: str) -> str:
    """Hex (64 digits) or base64 (as in ``x-amz-checksum-sha256``) → lowercase hex."""
    value = raw.strip()
    if _HEX64.fullmatch(value):
        return value.lower()
    try:
        digest = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        digest = b""
    if len(digest) != 32:
        raise ValidationFailed(
            "sha256 must be 64 hex digits or the base64 of a 32-byte digest.",
            errors=[{"loc": ["sha256"], "msg": "invalid digest", "type": "value_error"}],
        )
    return digest.hex()


def sha256_b64(hex_digest: str) -> str:
    """The form S3's ``x-amz-checksum-sha256`` header wants."""
    return base64.b64encode(bytes.fromhex(hex_digest)).decode()


def parse_upload_request(data: Any, policy: ContentPolicy) -> UploadRequest:
    """Validate the upload request body (422 / 415 / 413 as a client would expect)."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ValidationFailed("The request body must be a JSON object.")
    unknown = set(data) - {"content_type", "sha256", "size", "filename"}
    if unknown:
        raise ValidationFailed(
            f"Unknown fields: {', '.join(sorted(unknown))}.",
            errors=[{"loc": [n], "msg": "unknown field", "type": "unknown_field"} for n in unknown],
        )
    raw_type = data.get("content_type")
    if not isinstance(raw_type, str) or not _MEDIA_TYPE.fullmatch(normalize_media_type(raw_type)):
        raise ValidationFailed(
            "content_type is required: the media type of the content, e.g. 'text/plain'.",
            errors=[{"loc": ["content_type"], "msg": "required media type", "type": "missing"}],
        )
    content_type = normalize_media_type(raw_type)
    if content_type not in policy.allowed_types:
        raise UnsupportedMediaType(
            f"Content of type {content_type!r} is not accepted; "
            f"allowed: {', '.join(policy.allowed_types)}."
        )
    sha = data.get("sha256")
    if sha is not None and not isinstance(sha, str):
        raise ValidationFailed("sha256 must be a string.")
    size = data.get("size")
    if size is not None and (not isinstance(size, int) or isinstance(size, bool) or size < 1):
        raise ValidationFailed("size must be a positive integer (bytes).")
    if size is not None and size > policy.max_bytes:
        raise PayloadTooLarge(f"size {size} is over the {policy.max_bytes}-byte limit.")
    filename = data.get("filename")
    if filename is not None and (
        not isinstance(filename, str) or not 1 <= len(filename) <= 255 or not filename.isprintable()
    ):
        raise ValidationFailed("filename must be 1-255 printable characters.")
    return UploadRequest(
        content_type=content_type,
        sha256=normalize_sha256(sha) if sha is not None else None,
        size=size,
        filename=filename.replace("/", "_").replace("\\", "_") if filename else None,
    )


def content_disposition(filename: str | None, fallback: str) -> str:
    """``attachment`` (never inline: the bytes are the client's) with an RFC 6266 name."""
    name = filename or fallback
    ascii_name = re.sub(r"[^A-Za-z0-9._ -]", "_", name)[:200] or "content"
    return f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(name, safe='')}"
