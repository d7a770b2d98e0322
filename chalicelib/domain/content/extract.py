"""The text search gets from an object: HTML's visible text, Markdown without its
markup, JSON's keys and strings, a PDF's pages; always within a character cap."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from html.parser import HTMLParser
from typing import Any


class HtmlText(HTMLParser):
    """Visible text of an HTML document, fed incrementally (script/style skipped)."""

    SKIP = frozenset({"script", "style", "noscript", "template"})

    def __init__(self, sink: TextSink) -> None:
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
class TextSink:
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
    sink = TextSink(limit)
    for page in reader.pages:
        if sink.full:
            sink.truncated = True
            break
        sink.add((page.extract_text() or "") + "\n")
    return sink.text().strip(), sink.truncated
