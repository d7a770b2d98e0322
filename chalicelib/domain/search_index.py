"""A document as the search index holds it, and the index's settings and mapping.
Pure functions; no client, no I/O.

A document's index id is ``join_key(org, id)`` (length-prefixed components:
injective, so two (org, id) pairs never share an index entry, whatever
characters they hold).  The text fields use the ``boolean`` similarity (a
match scores its boost, no corpus statistics), so no score depends on another
org's documents (docs/search.md, "Tenant independence").
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from chalicelib.domain.keys import join_key
from chalicelib.domain.pii import blind_tokens
from chalicelib.domain.timestamps import iso_z

# the mapping's version, in the index's ``_meta``: an index of an older schema is
# not written to by the sync (a reindex builds one of this schema)
SCHEMA_VERSION = 4  # 3: each document's ACL (visibility, readers: domain/access.py);
# 4: blind-index tokens of personal-data fields (``pii``)


def index_id(org: str, doc_id: str) -> str:
    """The OpenSearch ``_id`` of a document: injective in (org, id)."""
    return join_key(org, doc_id)


def flatten_text(value: Any, limit: int) -> str:
    """The strings inside a JSON body, in document order, up to ``limit`` chars."""
    parts: list[str] = []
    size = 0
    stack: list[Any] = [value]
    while stack and size < limit:
        item = stack.pop()
        if isinstance(item, str):
            parts.append(item)
            size += len(item) + 1
        elif isinstance(item, dict):
            stack.extend(reversed(list(item.values())))
        elif isinstance(item, list):
            stack.extend(reversed(item))
    return "\n".join(parts)[:limit]


@dataclass(frozen=True)
class SearchDocument:
    """A document as the index holds it (deleted documents are not held)."""

    org: str
    id: str
    version: int
    source: dict[str, Any] | None  # None: the document is deleted or gone

    @property
    def index_id(self) -> str:
        return index_id(self.org, self.id)


def search_document(row: dict[str, Any], *, max_chars: int) -> SearchDocument:
    """From a ``documents`` row (plus ``content_text``) to its indexed form."""
    if row.get("deleted_at") is not None:
        return SearchDocument(row["org"], row["id"], row["version"], None)
    content = row.get("content") or {}
    text = row.get("content_text") if content.get("status") == "ready" else None
    return SearchDocument(
        row["org"],
        row["id"],
        row["version"],
        {
            "org": row["org"],
            "id": row["id"],
            "title": row["title"],
            "body_text": flatten_text(row["body"], max_chars),
            "content_text": (text or "")[:max_chars] or None,
            "tags": list(row["tags"]),
            "owner": row["owner"],
            "visibility": row.get("visibility") or "org",
            # who reads it besides the role rule: owner and grantees (domain/access.py)
            "readers": sorted({row["owner"], *(row.get("grantees") or [])}),
            "version": row["version"],
            "created_at": iso_z(row["created_at"]),
            "updated_at": iso_z(row["updated_at"]),
            # personal-data fields: keyed hashes only, never a value (domain/pii.py)
            "pii": blind_tokens(row.get("metadata")),
        },
    )


def _text(**extra: Any) -> dict[str, Any]:
    # boolean similarity: a matching term scores its query boost, with no
    # IDF or length normalisation, so no score depends on other documents
    # (other orgs' included) in the same index
    return {"type": "text", "analyzer": "text_folded", "similarity": "boolean", **extra}


def index_body(shards: int, replicas: int) -> dict[str, Any]:
    """Settings and mapping of a ``documents-vN`` index (schema ``SCHEMA_VERSION``)."""
    return {
        "settings": {
            "number_of_shards": shards,
            "number_of_replicas": replicas,
            # external-versioned delete tombstones are kept this long, so a
            # stale index request arriving late still loses to the delete
            "gc_deletes": "1h",
            "analysis": {
                "analyzer": {
                    "text_folded": {
                        "type": "custom",
                        "tokenizer": "standard",
                        "filter": ["lowercase", "asciifolding"],
                    }
                }
            },
        },
        "mappings": {
            "_meta": {"schema": SCHEMA_VERSION},
            "dynamic": "strict",
            "properties": {
                "org": {"type": "keyword"},
                "id": {"type": "keyword"},
                "title": _text(fields={"raw": {"type": "keyword", "ignore_above": 256}}),
                "body_text": _text(),
                "content_text": _text(),
                "tags": {"type": "keyword"},
                "owner": {"type": "keyword"},
                "visibility": {"type": "keyword"},
                "readers": {"type": "keyword"},
                "version": {"type": "long"},
                "created_at": {"type": "date"},
                "updated_at": {"type": "date"},
                "pii": {"type": "keyword"},
            },
        },
    }


@dataclass(frozen=True)
class ItemResult:
    """What the index said about one document of a bulk write."""

    index: str
    index_id: str
    ok: bool  # applied, or already superseded (a newer external version is held)
    retryable: bool = False  # the index was busy for this item (429/5xx)
    reason: str | None = None
