"""The unit of work and its transaction: the repositories that commit together."""

from __future__ import annotations

from collections.abc import Iterable
from contextlib import AbstractContextManager
from typing import Protocol

from chalicelib.domain.model import Document
from chalicelib.domain.ports.access import GrantRepository
from chalicelib.domain.ports.cache import CacheRepairs
from chalicelib.domain.ports.changes import ChangeFeed
from chalicelib.domain.ports.content import ContentRecords
from chalicelib.domain.ports.documents import DocumentRepository
from chalicelib.domain.viewer import Viewer


class Transaction(Protocol):
    """One open database transaction of one org, and the repositories on it:
    what they write commits (or rolls back) together."""

    @property
    def documents(self) -> DocumentRepository: ...

    @property
    def uploads(self) -> ContentRecords: ...

    @property
    def change_feed(self) -> ChangeFeed: ...

    @property
    def cache_repairs(self) -> CacheRepairs: ...

    @property
    def grants(self) -> GrantRepository: ...


class UnitOfWork(Protocol):
    def transaction(
        self, org: str, *, prefetch: str | None = None
    ) -> AbstractContextManager[Transaction]:
        """One database transaction with the tenant set; commits on clean exit.

        ``prefetch``: the id of the document the caller reads first (a hint
        that lets the adapter read it together with BEGIN)."""

    def read_document(self, org: str, doc_id: str) -> Document | None:
        """A single consistent read of one document (deleted or not)."""

    def ping(self) -> None: ...

    def close(self) -> None:
        """Release its connections (tests, the local server's shutdown)."""

    def readable_ids(
        self, org: str, viewer: Viewer, doc_ids: Iterable[str], *, deleted: bool = False
    ) -> set[str]:
        """Which of ``doc_ids`` (live documents of ``org``; with ``deleted``, soft-deleted
        ones too: a subscriber learns of a deletion) ``viewer`` may read: one query (the
        real-time fan-out and search results use it).  The caller checks the org role
        (at least ``reader``) first."""
