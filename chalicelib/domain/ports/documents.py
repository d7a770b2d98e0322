"""The documents repository: reads and writes of one org inside a transaction."""

from __future__ import annotations

from typing import Protocol

from chalicelib.domain.model import Change, Document, ListCursor, VersionRecord
from chalicelib.domain.viewer import Viewer


class DocumentRepository(Protocol):
    """Reads and writes of one transaction, scoped to one org."""

    def get(self, doc_id: str) -> Document | None:
        """The document, deleted or not; ``None`` when it never existed in this org."""

    def insert(self, doc: Document, change: Change, *, last: bool = False) -> int | None:
        """Insert a new document with its version/outbox/audit rows; None if the id is taken.

        Returns the version written: ``doc.version``, or above it when the id had
        an earlier life that was purged (its versions keep counting above the
        purge's, which the search index still holds as a delete).

        ``last``: nothing else follows in this transaction, so the adapter may
        send COMMIT with it (one round trip less); the transaction is then over."""

    def update(
        self, doc: Document, change: Change, *, expected_version: int, last: bool = False
    ) -> bool:
        """Replace the row if it is still at ``expected_version`` (optimistic concurrency),
        with its version/outbox/audit rows; False (and nothing written) otherwise.
        ``last`` as for ``insert``."""

    def list_documents(
        self, *, limit: int, after: ListCursor | None, tag: str | None, viewer: Viewer | None = None
    ) -> list[Document]:
        """Live documents, newest first, keyset-paginated; with ``viewer``, only
        those that viewer may read (domain/access.py), filtered in the query."""

    def list_versions(self, doc_id: str, *, limit: int, before: int | None) -> list[VersionRecord]:
        """Versions of a document, newest first."""

    def get_version(self, doc_id: str, version: int) -> VersionRecord | None: ...
