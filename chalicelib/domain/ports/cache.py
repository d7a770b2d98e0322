"""The document cache, the cache repair queue and the purge's cache eviction."""

from __future__ import annotations

from typing import Protocol

from chalicelib.domain.cache import CachedDocument, CacheRepair


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

    def repair_due(self) -> bool:
        """Whether the documents writers could not fence must be fenced before the
        cache is trusted for the next read (after an outage, and periodically)."""

    def repair_keys(self, items: list[CacheRepair]) -> bool:
        """Fence these documents and move their orgs' list pages on; False if unreachable."""

    def repaired(self) -> None:
        """The repair is done: the next one is due after the repair interval."""

    def repair_failed(self) -> None:
        """The repair could not complete (its queue could not be read): do not trust
        the cache for this read."""


class CacheRepairs(Protocol):
    """The cache repair queue as a transaction adds to it."""

    def add(self, doc_id: str, version: int) -> None:
        """Queue, in this transaction, a repair of ``doc_id``: its cache could not be fenced."""


class CacheRepairQueue(Protocol):
    """The documents writers could not fence, across orgs (ids and versions only)."""

    def pending(self, limit: int) -> list[CacheRepair]: ...

    def clear(self, items: list[CacheRepair]) -> None: ...


class CacheEviction(Protocol):
    def evict_document(self, org: str, doc_id: str) -> bool:
        """Remove the document's entries and move its org's list pages on; False if
        the cache could not be reached."""
