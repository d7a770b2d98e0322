"""What the document cache holds, and a queued cache repair."""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple


@dataclass(frozen=True)
class CachedDocument:
    version: int
    etag: str
    body: str | None  # the rendered JSON representation; None marks a deleted document
    # the document's ACL (``domain.access.Acl.encode``), "" when open to the whole org:
    # cached with the body so a hit is still one GET
    acl: str = ""


class CacheRepair(NamedTuple):
    """A queued cache repair: a document whose cache entry a writer could not fence."""

    org: str
    doc_id: str
    version: int
