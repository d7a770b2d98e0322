"""Personal-data metadata fields: sealed on write, opened for readers, rewrapped
after a key rotation.

Where each form lives (docs/compliance.md, "Personal data fields"):

* PostgreSQL (documents and every version), the Redis document cache and list
  pages hold the *sealed* form: the envelope (domain/pii.py).  The rendered
  JSON the cache stores is rendered from the sealed document, and opened after
  the cache, on the way out.
* The search index holds only the blind-index tokens (``bi``), never a value;
  the changes feed and search hits carry no metadata at all.
* A caller who may read the document (its org role, and the grants once they
  exist) gets the clear value: read, list, versions, and the answer to its own
  write.  There is no read surface that returns metadata to anyone else.

Cost on the read path: a rendered document is parsed and re-rendered only when
it holds an envelope (a substring test first); one AES-GCM per sealed value,
with the data key's AESGCM object cached by the cipher.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import replace
from typing import Any

from chalicelib.domain.errors import ValidationFailed
from chalicelib.domain.model import Document
from chalicelib.domain.pii import (
    RENDERED_MARK,
    blind_input,
    field_context,
    is_envelope,
)
from chalicelib.domain.ports.pii import FieldCipher, PiiReencryptionStore


class PiiFields:
    """The declared personal-data fields and the cipher that protects them."""

    def __init__(self, fields: Iterable[str] = (), cipher: FieldCipher | None = None) -> None:
        self.names = tuple(dict.fromkeys(fields))  # as declared (DOCS_PII_FIELDS order)
        self.fields = frozenset(self.names)
        self.cipher = cipher
        if self.fields and cipher is None:
            raise ValueError("personal-data fields need a cipher")

    @property
    def enabled(self) -> bool:
        return bool(self.fields)

    # -- writes -----------------------------------------------------------------------
    def seal(self, org: str, doc_id: str, metadata: dict[str, Any]) -> dict[str, Any]:
        """Clear metadata (as a client sent it, or after a patch) -> stored form."""
        if not self.fields or not any(name in metadata for name in self.fields):
            return metadata
        assert self.cipher is not None
        out = dict(metadata)
        for name in self.fields & metadata.keys():
            value = metadata[name]
            out[name] = self.cipher.encrypt(
                value, context=field_context(org, doc_id, name), blind=blind_input(org, name, value)
            )
        return out

    def seal_document(self, doc: Document) -> Document:
        sealed = self.seal(doc.org, doc.id, doc.metadata)
        return doc if sealed is doc.metadata else replace(doc, metadata=sealed)

    # -- reads ------------------------------------------------------------------------
    def open(self, org: str, doc_id: str, metadata: Any) -> Any:
        """Stored metadata -> clear (values stored before a field was declared
        personal data are returned as they are)."""
        if not self.fields or not isinstance(metadata, dict):
            return metadata
        sealed = [n for n in self.fields & metadata.keys() if is_envelope(metadata[n])]
        if not sealed:
            return metadata
        assert self.cipher is not None
        out = dict(metadata)
        for name in sealed:
            context = field_context(org, doc_id, name)
            out[name] = self.cipher.decrypt(metadata[name], context=context)
        return out

    def open_document(self, doc: Document) -> Document:
        opened = self.open(doc.org, doc.id, doc.metadata)
        return doc if opened is doc.metadata else replace(doc, metadata=opened)

    def open_rendered(self, body: str) -> str:
        """A rendered document (as cached) with its sealed values opened."""
        if not self.fields or RENDERED_MARK not in body:
            return body
        doc = json.loads(body)
        if not isinstance(doc, dict) or not isinstance(doc.get("org"), str):
            return body
        doc["metadata"] = self.open(doc["org"], str(doc.get("id")), doc.get("metadata"))
        return json.dumps(doc, separators=(",", ":"), ensure_ascii=False)

    def open_page(self, page: str) -> str:
        """A rendered list page (as cached) with its documents' sealed values opened."""
        if not self.fields or RENDERED_MARK not in page:
            return page
        data = json.loads(page)
        for item in data.get("items", []):
            item["metadata"] = self.open(item["org"], item["id"], item.get("metadata"))
        return json.dumps(data, separators=(",", ":"), ensure_ascii=False)

    def seal_response(self, body: Any) -> Any:
        """A response about to be stored (an Idempotency-Key's outcome): a document
        in it gets its personal-data fields sealed, as in the cache; ``open_rendered``
        opens it again on the way out."""
        if not self.fields or not isinstance(body, str) or '"metadata"' not in body:
            return body
        try:
            doc = json.loads(body)
        except ValueError:
            return body
        if not (isinstance(doc, dict) and isinstance(doc.get("metadata"), dict)):
            return body
        if not isinstance(doc.get("org"), str) or not isinstance(doc.get("id"), str):
            return body
        doc["metadata"] = self.seal(doc["org"], doc["id"], doc["metadata"])
        return json.dumps(doc, separators=(",", ":"), ensure_ascii=False)

    # -- search -----------------------------------------------------------------------
    def blind_filter(self, org: str, wanted: dict[str, Any]) -> list[str]:
        """The index tokens an exact-match filter on personal-data fields looks for."""
        tokens: list[str] = []
        for name, value in wanted.items():
            raw = blind_input(org, name, value)
            if name not in self.fields or raw is None:
                raise ValidationFailed(
                    "Only personal-data metadata fields can be filtered on, by a string, "
                    "number, boolean or null value.",
                    errors=[{"loc": ["filter", "metadata", name], "msg": "not filterable",
                             "type": "value_error"}],
                )  # fmt: skip
            assert self.cipher is not None
            token = self.cipher.blind_index(raw)
            if token is None:
                raise ValidationFailed(
                    "Exact-match search on personal-data fields is not configured "
                    "(no blind-index key).",
                    errors=[{"loc": ["filter", "metadata"], "msg": "not configured",
                             "type": "value_error"}],
                )  # fmt: skip
            tokens.append(token)
        return tokens

    # -- key rotation -----------------------------------------------------------------
    def reencrypt(self, store: PiiReencryptionStore, *, batch: int = 500) -> dict[str, int]:
        """Rewrap every personal-data value not under the active key (and seal any
        stored in clear before its field was declared personal data), in every
        document and version.  Idempotent: a second run changes nothing."""
        if not self.fields:
            return {"documents": 0, "rows": 0}
        assert self.cipher is not None
        active = self.cipher.active_kid
        after: tuple[str, str] | None = None
        documents = rows = 0
        while ids := store.document_ids(after, batch):
            for org, doc_id in ids:

                def rewrite(meta: dict[str, Any], org: str = org, doc_id: str = doc_id) -> Any:
                    stale = [
                        n for n in self.fields & meta.keys()
                        if not is_envelope(meta[n]) or meta[n]["kid"] != active
                    ]  # fmt: skip
                    if not stale:
                        return None
                    clear = self.open(org, doc_id, {n: meta[n] for n in stale})
                    return {**meta, **self.seal(org, doc_id, clear)}

                changed = store.rewrite_metadata(org, doc_id, rewrite)
                documents += 1 if changed else 0
                rows += changed
            after = ids[-1]
        return {"documents": documents, "rows": rows}
