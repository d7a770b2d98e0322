"""The purge: documents deleted longer ago than the restore window leave every store.

Within the window (``DOCS_DELETE_RETENTION_DAYS``, 30 days by default) an admin
can restore a deleted document; after it, a scheduled run (functions/purge.py
in AWS, the local sync loop and ``python -m chalicelib.cli purge`` locally)
removes it everywhere.  Each run is bounded (``batch_size`` documents) and
idempotent; a crash anywhere leaves work the next run finishes.

Order, and why
--------------
1. **Database, in one tenant transaction per document** (``PurgeStore.purge``):
   record a purge task holding the document's content object keys, a
   ``purge`` outbox row (the search sync deletes the index entry, like any
   write) and a pseudonymous audit row (actor ``system``, action ``purge``,
   the id and counts; no title, no content), and delete every row of the
   document (the document, versions, extracted text, uploads, grants).  From
   this commit on nothing in the database points at the content, so nothing
   can serve it, and the keys still to delete are in the task: none is lost.
2. **Outside traces, per task** (``_finish``): every version and delete
   marker of each content key in S3 (the bucket is versioned), the cached
   document and its list pages, and the real-time subscriptions to it (the
   real-time registry's hook).  Each step is idempotent; only when all of them
   succeeded is the task deleted.  A failure backs the task off and is logged
   and counted (``PurgeFailures``, alarmed).

The search entry goes through the outbox rather than a direct delete so that
it follows the same ordering, retry and dead-letter rules as every other
index write (service_layer/search_sync.py deletes a document whose state is
gone).
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from chalicelib.domain.errors import DomainError
from chalicelib.domain.model import Document
from chalicelib.domain.ports.cache import CacheEviction
from chalicelib.domain.ports.outbox import OutboxNudge
from chalicelib.domain.ports.purge import ObjectPurger, PurgeStore, SubscriptionDropper
from chalicelib.domain.purge import PurgeTask
from chalicelib.observability import count, logger
from chalicelib.settings_groups import PurgeSettings


@dataclass
class PurgeReport:
    purged: int = 0  # documents whose rows were removed in this run
    finished: int = 0  # tasks whose outside traces are all gone
    objects: int = 0  # S3 object versions and delete markers removed
    failed: int = 0  # tasks left for a later run
    skipped: int = 0  # listed, but restored or reused before the purge reached them
    errors: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, int]:
        out = dict(self.__dict__)
        out.pop("errors")
        return out


class Purge:
    def __init__(
        self,
        store: PurgeStore,
        *,
        settings: PurgeSettings = PurgeSettings(),
        objects: ObjectPurger,
        cache: CacheEviction,
        droppers: Sequence[SubscriptionDropper] = (),
        nudge: OutboxNudge | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.store = store
        self.objects = objects
        self.cache = cache
        self.droppers = droppers  # the real-time registry's hook(s); see bootstrap
        self.nudge = nudge
        self.retention = settings.retention
        self.batch_size = settings.batch_size
        self._clock = clock or (lambda: datetime.now(UTC))

    def run(self, request_id: str | None = None) -> PurgeReport:
        """One bounded run: finish leftover tasks, purge up to ``batch_size``
        documents past the window, finish their tasks.  ``request_id`` (the Lambda
        invocation's id; a new one otherwise) goes in each purge's audit row, as a
        request's id does for an API write: it ties the rows of one run together."""
        request_id = request_id or f"purge-{uuid.uuid4()}"
        report = PurgeReport()
        for task in self.store.pending(self.batch_size):  # a crashed run's leftovers
            self._finish(task, report)
        cutoff = self._clock() - self.retention
        for org, doc_id in self.store.due(cutoff, self.batch_size):
            purged = self.store.purge(org, doc_id, cutoff, request_id=request_id)
            if purged is None:
                report.skipped += 1
                continue
            report.purged += 1
            self._wake_search(purged)
            self._finish(purged, report)
        if report.purged:
            count("DocumentsPurged", report.purged)
        if report.failed:
            count("PurgeFailures", report.failed)
        return report

    def _wake_search(self, task: PurgeTask) -> None:
        """Best effort, like after any write: the sweep finds the outbox row anyway."""
        if self.nudge is None:
            return
        now = self._clock()  # the nudge reads the key and version only
        stub = Document(task.org, task.doc_id, "", None, [], {}, task.version, "", now, now)
        try:
            self.nudge(stub)
        except Exception:
            logger.warning("purge: search nudge failed", org=task.org, doc_id=task.doc_id)

    def _finish(self, task: PurgeTask, report: PurgeReport) -> None:
        try:
            report.objects += self.objects.delete_every_version(task.keys)
            if not self.cache.evict_document(task.org, task.doc_id):
                raise DomainError("the cache could not be reached")
            for drop in self.droppers:
                drop(task.org, task.doc_id)
        except Exception as exc:
            reason = f"{type(exc).__name__}: {str(exc)[:200]}"
            report.failed += 1
            report.errors.append(reason)
            logger.error("purge task failed", org=task.org, doc_id=task.doc_id, reason=reason)
            with contextlib.suppress(DomainError):  # the lease brings it back anyway
                self.store.failed(task, reason)
            return
        self.store.finish(task)
        report.finished += 1
