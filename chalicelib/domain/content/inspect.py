"""Inspecting an object as it streams: size, SHA-256, what the bytes are, their text.

The service layer feeds an ``Inspector`` the object's chunks as they arrive
from S3, so memory stays bounded whatever the object's size — the hash and the
size are running values, the sniffing buffer is a few KiB, extracted text is
capped (``extract``), and a PDF (which needs random access to be parsed) is
spooled to a temporary *file* with its own cap.

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

import codecs
import contextlib
import hashlib
import os
import tempfile
from dataclasses import dataclass
from typing import IO, Any

from chalicelib.domain.content.extract import HtmlText, TextSink, json_text, markdown_text, pdf_text
from chalicelib.domain.content.policy import TEXT_TYPES, ContentPolicy

SNIFF_BYTES = 8192
_HTML_BUFFER_MAX = 1024 * 1024
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
        self._sink = TextSink(policy.text_max_chars)
        self._html: HtmlText | None = None
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
                self._html = HtmlText(self._sink)
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
