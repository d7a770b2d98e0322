"""Cache coherence: fence before commit, publish after commit, repair what was missed.

A write never leaves a reader able to see an older version once it was
acknowledged (docs/resilience.md; the Redis side is adapters/redis/cache.py):

1. **Fence.** Inside the write's transaction, before COMMIT, the cache is told
   the new version: reads then treat the entry as a miss and go to
   PostgreSQL, and fills of older versions are refused.  If the cache cannot
   be reached, the document is queued for repair in the same transaction
   instead (the cache repair queue, ``tx.cache_repairs``).
2. **Publish.** After COMMIT and before the answer, the new version replaces
   the cached one and the org's list pages move on.  If that fails after a
   successful fence, the document is queued for repair (for the list pages).
3. **Repair.** Before the cache is trusted for a read (after an outage, and at
   most once per repair interval otherwise), every queued document is fenced
   and the queue cleared.  The service layer runs it explicitly: a cache read
   never reaches the database on its own.
"""

from __future__ import annotations

import contextlib

from chalicelib.domain.access import acl_of
from chalicelib.domain.cache import CachedDocument
from chalicelib.domain.errors import DomainError
from chalicelib.domain.model import Document, render
from chalicelib.domain.ports.cache import CacheRepairQueue, DocumentCache
from chalicelib.domain.ports.transaction import Transaction, UnitOfWork


def cache_entry(doc: Document) -> CachedDocument:
    """A document as the cache holds it: rendered, with its ACL (one GET on a hit)."""
    if doc.deleted:
        return CachedDocument(doc.version, doc.etag, None)
    return CachedDocument(doc.version, doc.etag, render(doc), acl_of(doc).encode())


class CacheCoherence:
    def __init__(
        self,
        cache: DocumentCache,
        uow: UnitOfWork,
        queue: CacheRepairQueue,
        *,
        repair_batch: int = 500,
    ) -> None:
        self.cache = cache
        self.uow = uow
        self.queue = queue
        self.repair_batch = repair_batch

    def fence(self, tx: Transaction, doc: Document) -> bool:
        """Inside the write's transaction: stop reads being served (or filled) below
        this version once it commits.  When the cache cannot be reached, queue the
        key for repair in the same transaction; returns whether the fence was stored."""
        if self.cache.fence(doc.org, doc.id, doc.version):
            return True
        tx.cache_repairs.add(doc.id, doc.version)
        return False

    def publish(self, doc: Document, *, fenced: bool) -> None:
        """After commit, before answering: the new version replaces the cached one and
        list pages move on.  If that fails after a successful fence, queue a repair
        (for the list pages); an unfenced write queued one already."""
        entry = cache_entry(doc)
        if not self.cache.publish(doc.org, doc.id, entry) and fenced:
            with contextlib.suppress(DomainError), self.uow.transaction(doc.org) as tx:
                tx.cache_repairs.add(doc.id, doc.version)

    def before_read(self) -> bool:
        """Repair, when due, before the cache is trusted for a read; False when the
        repair could not complete (the read then skips the cache)."""
        if not self.cache.repair_due():
            return True
        try:
            items = self.queue.pending(self.repair_batch)
            if items and not self.cache.repair_keys(items):
                return False
            if items:
                self.queue.clear(items)
        except Exception:  # the queue could not be read or cleared: a read is never failed by it
            self.cache.repair_failed()
            return False
        self.cache.repaired()
        return True
