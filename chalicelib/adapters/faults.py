"""Fault injection for tests: wrappers that widen a race window, around real adapters.

Never in a real deployment: the composition root wraps an adapter only when
its ``DOCS_FAULT_*`` setting is non-zero (the e2e tests set them for the local
server), and tests may compose them directly.  Each wrapper delegates every
call of its port unchanged but the one it slows down.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any

from chalicelib.domain.cache import CachedDocument, CacheRepair
from chalicelib.domain.ports.cache import DocumentCache
from chalicelib.domain.ports.search import SearchIndex
from chalicelib.domain.search_index import ItemResult, SearchDocument


class SlowCacheFills:
    """A ``DocumentCache`` whose fills (``put_if_newer``, the store after a read
    of PostgreSQL) wait first: a write can commit and publish between a read
    and its fill, and the fill must then lose (``DOCS_FAULT_FILL_DELAY_MS``)."""

    def __init__(
        self, cache: DocumentCache, delay_s: float, sleep: Callable[[float], None] = time.sleep
    ) -> None:
        self.cache = cache
        self.delay_s = delay_s
        self._sleep = sleep

    def put_if_newer(self, org: str, doc_id: str, entry: CachedDocument) -> None:
        self._sleep(self.delay_s)
        self.cache.put_if_newer(org, doc_id, entry)

    def get(self, org: str, doc_id: str) -> CachedDocument | None:
        return self.cache.get(org, doc_id)

    def publish(self, org: str, doc_id: str, entry: CachedDocument) -> bool:
        return self.cache.publish(org, doc_id, entry)

    def get_etag(self, org: str, doc_id: str) -> tuple[int, str] | None:
        return self.cache.get_etag(org, doc_id)

    def fence(self, org: str, doc_id: str, version: int) -> bool:
        return self.cache.fence(org, doc_id, version)

    def get_list(self, org: str, key: str) -> tuple[str | None, str]:
        return self.cache.get_list(org, key)

    def put_list(self, org: str, key: str, generation: str, value: str) -> None:
        self.cache.put_list(org, key, generation, value)

    def bump_lists(self, org: str) -> bool:
        return self.cache.bump_lists(org)

    def status(self) -> str:
        return self.cache.status()

    def repair_due(self) -> bool:
        return self.cache.repair_due()

    def repair_keys(self, items: list[CacheRepair]) -> bool:
        return self.cache.repair_keys(items)

    def repaired(self) -> None:
        self.cache.repaired()

    def repair_failed(self) -> None:
        self.cache.repair_failed()


class PauseAfterIndexWrites:
    """A ``SearchIndex`` that pauses after the index acknowledged a write, before
    the caller can mark its outbox rows: a consumer killed in that window must
    lose nothing (``DOCS_FAULT_SYNC_PAUSE_MS``)."""

    def __init__(
        self, index: SearchIndex, pause_s: float, sleep: Callable[[float], None] = time.sleep
    ) -> None:
        self.index = index
        self.pause_s = pause_s
        self._sleep = sleep

    def write(self, docs: Iterable[SearchDocument], indexes: list[str]) -> list[ItemResult]:
        results = self.index.write(docs, indexes)
        self._sleep(self.pause_s)
        return results

    @property
    def alias(self) -> str:
        return self.index.alias

    def ping(self) -> bool:
        return self.index.ping()

    def live_index(self) -> str | None:
        return self.index.live_index()

    def schema_version(self, name: str) -> int:
        return self.index.schema_version(name)

    def next_index_name(self) -> str:
        return self.index.next_index_name()

    def create_index(self, name: str) -> None:
        self.index.create_index(name)

    def swap_alias(self, old: str | None, new: str) -> None:
        self.index.swap_alias(old, new)

    def drop_index(self, name: str) -> None:
        self.index.drop_index(name)

    def refresh(self, index: str | None = None) -> None:
        self.index.refresh(index)

    def search(self, body: dict[str, Any]) -> dict[str, Any]:
        return self.index.search(body)
