"""The ports the service layer depends on; adapters implement them.

Unit tests pass in-memory fakes of these (tests/unit/fakes.py); integration
tests run the real adapters (PostgreSQL, Redis) against real servers.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from chalicelib.domain.model import Document


@dataclass(frozen=True)
class ListCursor:
    created_at: datetime
    id: str


@dataclass(frozen=True)
class Change:
    """Who changed a document and why: becomes its version, outbox and audit rows."""

    action: str  # create, replace, change, delete, restore, restore-version:N, ...
    actor: str
    request_id: str | None = None  # the server's own id of the request
    client_request_id: str | None = None  # the X-Request-Id the client sent, if any


@dataclass(frozen=True)
class VersionRecord:
    version: int
    title: str
    body: Any
    tags: list[str]
    metadata: dict[str, Any]
    deleted: bool
    author: str
    action: str
    created_at: datetime
    content: dict[str, Any] | None = None


class DocumentRepository(Protocol):
    """Reads and writes of one transaction, scoped to one org."""

    def get(self, doc_id: str) -> Document | None:
        """The document, deleted or not; ``None`` when it never existed in this org."""

    def insert(self, doc: Document, change: Change, *, last: bool = False) -> bool:
        """Insert a new document with its version/outbox/audit rows; False if the id is taken.

        ``last``: nothing else follows in this transaction, so the adapter may
        send COMMIT with it (one round trip less); the transaction is then over."""

    def update(
        self, doc: Document, change: Change, *, expected_version: int, last: bool = False
    ) -> bool:
        """Replace the row if it is still at ``expected_version`` (optimistic concurrency),
        with its version/outbox/audit rows; False (and nothing written) otherwise.
        ``last`` as for ``insert``."""

    def list_documents(
        self, *, limit: int, after: ListCursor | None, tag: str | None
    ) -> list[Document]:
        """Live documents, newest first, keyset-paginated."""

    def list_versions(self, doc_id: str, *, limit: int, before: int | None) -> list[VersionRecord]:
        """Versions of a document, newest first."""

    def get_version(self, doc_id: str, version: int) -> VersionRecord | None: ...

    def mark_cache_dirty(self, doc_id: str, version: int) -> None:
        """Record, in this transaction, that the cache could not be fenced for ``doc_id``."""


class UnitOfWork(Protocol):
    def transaction(
        self, org: str, *, prefetch: str | None = None
    ) -> AbstractContextManager[DocumentRepository]:
        """One database transaction with the tenant set; commits on clean exit.

        ``prefetch``: the id of the document the caller reads first (a hint
        that lets the adapter read it together with BEGIN)."""

    def read_document(self, org: str, doc_id: str) -> Document | None:
        """A single consistent read of one document (deleted or not)."""

    def ping(self) -> None: ...

    def dirty_documents(self, limit: int) -> list[tuple[str, str, int]]:
        """(org, id, version) of documents whose cache entries need repair."""

    def clear_dirty(self, items: list[tuple[str, str, int]]) -> None: ...


@dataclass(frozen=True)
class CachedDocument:
    version: int
    etag: str
    body: str | None  # the rendered JSON representation; None marks a deleted document


class DocumentCache(Protocol):
    def get(self, org: str, doc_id: str) -> CachedDocument | None:
        """A cached document (or tombstone); None on a miss *or* when the cache is unavailable."""

    def put_if_newer(self, org: str, doc_id: str, entry: CachedDocument) -> None:
        """Store ``entry`` unless the cache already holds a newer version (atomic)."""

    def publish(self, org: str, doc_id: str, entry: CachedDocument) -> bool:
        """After a commit: ``put_if_newer`` plus ``bump_lists``; False if unreachable."""

    def get_etag(self, org: str, doc_id: str) -> tuple[int, str] | None:
        """(version, ETag) of a cached live document, without its body."""

    def fence(self, org: str, doc_id: str, version: int) -> bool:
        """Before commit: refuse fills below ``version``; False if the cache is unreachable."""

    def get_list(self, org: str, key: str) -> tuple[str | None, str]:
        """(cached page or None, generation token to pass to ``put_list``)."""

    def put_list(self, org: str, key: str, generation: str, value: str) -> None: ...

    def bump_lists(self, org: str) -> bool:
        """Make every cached list page of ``org`` unreachable (after a write)."""

    def status(self) -> str:
        """'ok', 'degraded' (breaker open) or 'disabled'."""
