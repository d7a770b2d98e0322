"""Large content: object keys, the upload policy, and inspecting an object as it streams.

Everything here is pure (no network): the service layer feeds an ``Inspector``
the object's chunks as they arrive from S3, so memory stays bounded whatever
the object's size — the hash and the size are running values, the sniffing
buffer is a few KiB, extracted text is capped, and a PDF (which needs random
access to be parsed) is spooled to a temporary *file* with its own cap.

Rejection reasons are stable codes followed by a sentence, e.g.
``"too_large: ..."``; clients and tests match on the code.

    too_large          over the upload's byte limit
    empty              a zero-byte object
    disallowed_type    the declared or sniffed type is not an allowed one
    type_mismatch      the bytes are not what the declared type says
    checksum_mismatch  the SHA-256 differs from the one the client declared
    invalid_text       a text type that is not UTF-8 (or holds NUL bytes)
    invalid_json       declared JSON that does not parse
    invalid_pdf        declared PDF that pypdf cannot read
"""

from __future__ import annotations

import base64
import binascii
import codecs
import contextlib
import hashlib
import json
import os
import re
import tempfile
from dataclasses import dataclass, field
from html.parser import HTMLParser
from typing import IO, Any
from urllib.parse import quote, unquote

from chalicelib.domain.errors import PayloadTooLarge, UnsupportedMediaType, ValidationFailed
from chalicelib.domain.model import is_valid_id

KEY_PREFIX = "content/"
SNIFF_BYTES = 8192
_HTML_BUFFER_MAX = 1024 * 1024
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
_UPLOAD_ID = re.compile(r"[0-9A-HJKMNP-TV-Z]{26}")  # a ULID (Crockford base32)
_HEX64 = re.compile(r"[0-9a-fA-F]{64}")
_MEDIA_TYPE = re.compile(r"[a-z0-9][a-z0-9!#$&^_.+-]*/[a-z0-9][a-z0-9!#$&^_.+-]*")
_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"%PDF-", "application/pdf"),
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
    (b"PK\x03\x04", "application/zip"),
    (b"\x1f\x8b", "application/gzip"),
    (b"\x7fELF", "application/x-executable"),
    (b"MZ", "application/x-msdownload"),
)


# ---------------------------------------------------------------- object keys
@dataclass(frozen=True)
class ContentKey:
    """Where an upload's bytes live: built only from server-side values."""

    org: str
    doc_id: str
    upload_id: str

    @property
    def key(self) -> str:
        # the org comes from a token and may hold any character: quote it
        return f"{KEY_PREFIX}{quote(self.org, safe='')}/{self.doc_id}/{self.upload_id}"


def parse_content_key(key: str) -> ContentKey | None:
    """The parts of a key this service issued; None for any other key.

    ``key`` is the decoded object key (S3 notifications URL-encode it: the
    caller unquotes first).  Strict on purpose: an unexpected key is ignored,
    never guessed at.
    """
    if not key.startswith(KEY_PREFIX):
        return None
    parts = key[len(KEY_PREFIX) :].split("/")
    if len(parts) != 3:
        return None
    org_q, doc_id, upload_id = parts
    org = unquote(org_q)
    if not org or quote(org, safe="") != org_q:
        return None
    if not is_valid_id(doc_id) or not _UPLOAD_ID.fullmatch(upload_id):
        return None
    return ContentKey(org, doc_id, upload_id)


# ------------------------------------------------------------ upload request
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


# ------------------------------------------------------------------- sniffing
def sniff(head: bytes) -> str:
    """The media type the first bytes prove: a magic number, ``text`` or octet-stream."""
    for magic, mtype in _MAGIC:
        if head.startswith(magic):
            return mtype
    if b"\x00" in head:
        return "application/octet-stream"
    try:
        codecs.getincrementaldecoder("utf-8")("strict").decode(head, final=False)
    except UnicodeDecodeError:
        return "application/octet-stream"
    return "text"


def effective_type(declared: str, sniffed: str, allowed: tuple[str, ...]) -> tuple[str, str | None]:
    """(type to serve, rejection reason or None): the bytes must agree with the declaration."""
    if declared not in allowed:
        return declared, f"disallowed_type: {declared} is not an allowed content type"
    if sniffed == "text":
        if declared in TEXT_TYPES:
            return declared, None
        return declared, f"type_mismatch: declared {declared} but the content is text"
    if sniffed == declared:
        return declared, None
    if sniffed not in allowed:
        return sniffed, f"disallowed_type: the content is {sniffed}, which is not allowed"
    return sniffed, f"type_mismatch: declared {declared} but the content is {sniffed}"


# ---------------------------------------------------------------- extraction
class _HtmlText(HTMLParser):
    """Visible text of an HTML document, fed incrementally (script/style skipped)."""

    SKIP = frozenset({"script", "style", "noscript", "template"})

    def __init__(self, sink: _TextSink) -> None:
        super().__init__(convert_charrefs=True)
        self.sink = sink
        self.skipping = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self.SKIP:
            self.skipping += 1

    def handle_endtag(self, tag: str) -> None:
        if tag in self.SKIP and self.skipping:
            self.skipping -= 1

    def handle_data(self, data: str) -> None:
        if not self.skipping and data.strip():
            self.sink.add(data.strip() + " ")


@dataclass
class _TextSink:
    """Collects text up to a cap; beyond it, only remembers that it was truncated."""

    limit: int
    parts: list[str] = field(default_factory=list)
    size: int = 0
    truncated: bool = False

    @property
    def full(self) -> bool:
        return self.size >= self.limit

    def add(self, text: str) -> None:
        room = self.limit - self.size
        if room <= 0:
            self.truncated = self.truncated or bool(text)
            return
        piece = text[:room]
        self.parts.append(piece)
        self.size += len(piece)
        if len(text) > room:
            self.truncated = True

    def text(self) -> str:
        return "".join(self.parts)


_MD_LINK = re.compile(r"!?\[([^\]]*)\]\([^)]*\)")
_MD_MARKS = re.compile(r"(^|\n)\s{0,3}(#{1,6}|>|[-*+]|\d+\.)\s+|[*_`~]{1,3}")


def markdown_text(text: str) -> str:
    """Markdown without its markup (links keep their words): what a reader sees."""
    return _MD_MARKS.sub(lambda m: m.group(1) or "", _MD_LINK.sub(r"\1", text))


def json_text(text: str) -> str:
    """The keys and string values of a JSON document, for full-text search."""
    out: list[str] = []
    stack: list[Any] = [json.loads(text)]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            out.extend(str(k) for k in node)
            stack.extend(reversed(list(node.values())))
        elif isinstance(node, list):
            stack.extend(reversed(node))
        elif isinstance(node, str):
            out.append(node)
    return " ".join(out)


def pdf_text(path: str, limit: int) -> tuple[str, bool]:
    """Text of a spooled PDF, page by page up to ``limit`` characters (raises if unreadable)."""
    from pypdf import PdfReader  # lazy: only PDFs pay for importing it

    reader = PdfReader(path)
    if reader.is_encrypted and not reader.decrypt(""):
        return "", False
    sink = _TextSink(limit)
    for page in reader.pages:
        if sink.full:
            sink.truncated = True
            break
        sink.add((page.extract_text() or "") + "\n")
    return sink.text().strip(), sink.truncated


@dataclass(frozen=True)
class Inspection:
    """What streaming an object once established."""

    size: int
    sha256: str
    content_type: str
    reason: str | None  # None: accepted
    text: str = ""
    text_truncated: bool = False
    note: str | None = None  # e.g. why no text was extracted

    @property
    def accepted(self) -> bool:
        return self.reason is None

    def content(self, upload_id: str, filename: str | None) -> dict[str, Any]:
        """The document's ``content`` member for this result."""
        out: dict[str, Any] = {
            "status": "ready" if self.accepted else "rejected",
            "upload_id": upload_id,
            "size": self.size,
            "content_type": self.content_type,
        }
        if self.sha256:
            out["sha256"] = self.sha256
        if filename:
            out["filename"] = filename
        if self.reason:
            out["reason"] = self.reason
        return out


class Inspector:
    """Feed it an object's chunks in order; ``finish`` says what the object is.

    Stops early (``done``) once the outcome is a rejection that more bytes
    cannot change, so an oversize or binary object is not read to its end.
    """

    def __init__(
        self,
        *,
        declared_type: str,
        declared_sha256: str | None,
        max_bytes: int,
        policy: ContentPolicy,
    ) -> None:
        self.declared_type = declared_type
        self.declared_sha256 = declared_sha256
        self.max_bytes = max_bytes
        self.policy = policy
        self.size = 0
        self.hash = hashlib.sha256()
        self.reason: str | None = None
        self.content_type = declared_type
        self._head = bytearray()
        self._sniffed: str | None = None
        self._decoder: codecs.IncrementalDecoder | None = None
        self._sink = _TextSink(policy.text_max_chars)
        self._html: _HtmlText | None = None
        self._spool: IO[bytes] | None = None
        self._spool_note: str | None = None
        self._first = True

    @property
    def done(self) -> bool:
        return self.reason is not None

    def feed(self, chunk: bytes) -> None:
        if self.done or not chunk:
            return
        self.size += len(chunk)
        if self.size > self.max_bytes:
            self._reject(f"too_large: the object is over the {self.max_bytes}-byte limit")
            return
        self.hash.update(chunk)
        if self._sniffed is None:
            self._head += chunk
            if len(self._head) < SNIFF_BYTES:
                return
            chunk, self._head = bytes(self._head), bytearray()
            self._decide(chunk)
            if self.done:
                return
        self._consume(chunk)

    def _decide(self, head: bytes) -> None:
        self._sniffed = sniff(head[:SNIFF_BYTES])
        self.content_type, reason = effective_type(
            self.declared_type, self._sniffed, self.policy.allowed_types
        )
        if reason:
            self._reject(reason)
        elif self.content_type in TEXT_TYPES:
            self._decoder = codecs.getincrementaldecoder("utf-8")("strict")
            if self.content_type == "text/html":
                self._html = _HtmlText(self._sink)
        elif self.content_type == "application/pdf":
            self._spool = tempfile.NamedTemporaryFile(  # noqa: SIM115 - closed in finish/_reject
                prefix="upload-", suffix=".pdf", dir=self.policy.spool_dir, delete=False
            )

    def _consume(self, chunk: bytes) -> None:
        if self._decoder is not None:
            try:
                text = self._decoder.decode(chunk)
            except UnicodeDecodeError:
                self._reject("invalid_text: the content is not valid UTF-8")
                return
            if "\x00" in text:
                self._reject("invalid_text: the content holds NUL bytes")
                return
            if self._first:
                text, self._first = text.removeprefix("\ufeff"), False
            if self._html is not None:
                # the parser buffers an unterminated construct (a comment that
                # never ends): stop parsing rather than let that buffer grow
                if self._sink.full or len(self._html.rawdata) > _HTML_BUFFER_MAX:
                    self._sink.truncated = True
                else:
                    self._html.feed(text)
            else:
                self._sink.add(text)
        elif self._spool is not None:
            if self.size > self.policy.pdf_spool_max_bytes:
                self._close_spool()
                self._spool_note = (
                    f"text not extracted: PDF over {self.policy.pdf_spool_max_bytes} bytes"
                )
            else:
                self._spool.write(chunk)

    def _reject(self, reason: str) -> None:
        self.reason = self.reason or reason
        self._close_spool()

    def _close_spool(self) -> None:
        if self._spool is not None:
            self._spool.close()
            with contextlib.suppress(OSError):
                os.unlink(self._spool.name)
            self._spool = None

    def finish(self) -> Inspection:
        """The verdict; call once, after the last chunk (or after ``done``)."""
        try:
            return self._finish()
        finally:
            self._close_spool()

    def _finish(self) -> Inspection:
        if not self.done and self._sniffed is None:
            if self.size == 0:
                self._reject("empty: the object has no bytes")
            else:
                head, self._head = bytes(self._head), bytearray()
                self._decide(head)
                if not self.done:
                    self._consume(head)
        # an object cut short at the limit has no meaningful digest
        digest = "" if (self.reason or "").startswith("too_large") else self.hash.hexdigest()
        if not self.done and self._decoder is not None:
            try:
                self._decoder.decode(b"", final=True)
            except UnicodeDecodeError:
                self._reject("invalid_text: the content ends inside a UTF-8 character")
        if not self.done and self.declared_sha256 and digest != self.declared_sha256:
            self._reject(
                f"checksum_mismatch: sha256 is {digest}, the upload declared {self.declared_sha256}"
            )
        if self.done:
            return Inspection(self.size, digest, self.content_type, self.reason)
        text, truncated = self._extract()
        if self.done:
            return Inspection(self.size, digest, self.content_type, self.reason)
        return Inspection(
            self.size, digest, self.content_type, None, text, truncated, self._spool_note
        )

    def _extract(self) -> tuple[str, bool]:
        if self._html is not None:
            self._html.close()
        text, truncated = self._sink.text(), self._sink.truncated
        if self.content_type == "text/markdown":
            return markdown_text(text), truncated
        if self.content_type == "application/json":
            if truncated:  # too long to parse within bounds: index the raw text
                return text, truncated
            try:
                return json_text(text), False
            except (ValueError, RecursionError):
                self._reject("invalid_json: the content is not valid JSON")
                return "", False
        if self.content_type == "application/pdf":
            return self._pdf()
        return text.strip(), truncated

    def _pdf(self) -> tuple[str, bool]:
        if self._spool is None:
            return "", False
        self._spool.close()
        try:
            return pdf_text(self._spool.name, self.policy.text_max_chars)
        except Exception:  # pypdf raises many types for broken files
            self._reject("invalid_pdf: the PDF could not be read")
            return "", False
