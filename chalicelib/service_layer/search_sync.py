"""The search sync: keep the index in sync with the outbox; reindex.

Why the index converges (and never goes backwards)
-------------------------------------------------
* Every committed change has an outbox row, written in the change's own
  transaction; a row is marked processed only after OpenSearch acknowledged
  the write it caused (at least once).
* Syncing a document writes its *current* committed state (read under the
  document's sync lock), versioned ``external`` with the document version.
  A replayed, duplicated or reordered row therefore rewrites the newest state
  or is refused as older (409): processing the outbox twice, shuffled, gives
  the same index.  A deleted document becomes an external-versioned delete,
  whose tombstone refuses late writes of older versions.
* Two consumers never sync the same document at once (advisory lock), so an
  older read cannot overtake a newer one between PostgreSQL and OpenSearch.
* Per-document failures (a mapping conflict) back off exponentially with full
  jitter and, after ``max_attempts``, move to ``search_dead_letters`` with the
  reason; the rest of the batch goes on.  When OpenSearch is unreachable the
  claim transaction rolls back and nothing is counted against the rows.

Reindex (zero downtime, no lost update): create ``{alias}-v{N+1}`` and register
it as *building* (from then on every consumer batch writes to it as well),
backfill it from PostgreSQL, re-sync every document of any transaction that
may have committed since registration (the catch-up: covers a backfill read
racing a write), then swap the alias in one atomic request and retire the
old index for a grace period.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import timedelta

from chalicelib.domain.errors import SearchUnavailable
from chalicelib.domain.outbox import DocumentState, OutboxRow
from chalicelib.domain.ports.outbox import Claim, Outbox
from chalicelib.domain.ports.search import SearchIndex
from chalicelib.domain.search_index import (
    SCHEMA_VERSION,
    ItemResult,
    SearchDocument,
    index_id,
    search_document,
)
from chalicelib.observability import count, logger, milliseconds
from chalicelib.service_layer.retry import full_jitter
from chalicelib.settings_groups import SearchSettings


@dataclass
class SyncReport:
    indexed: int = 0  # documents written (index or delete) and rows marked done
    rows: int = 0
    retried: int = 0
    dead_lettered: int = 0
    skipped: int = 0  # rows of documents another consumer was syncing
    batches: int = 0

    def add(self, other: SyncReport) -> None:
        for name in ("indexed", "rows", "retried", "dead_lettered", "skipped", "batches"):
            setattr(self, name, getattr(self, name) + getattr(other, name))

    def as_dict(self) -> dict[str, int]:
        return dict(self.__dict__)


@dataclass
class ReindexReport:
    index: str
    previous: str | None
    backfilled: int = 0
    caught_up: int = 0
    failed: list[str] = field(default_factory=list)
    seconds: float = 0.0


class SearchSync:
    def __init__(
        self,
        outbox: Outbox,
        index: SearchIndex,
        settings: SearchSettings = SearchSettings(),
    ) -> None:
        self.outbox = outbox
        self.index = index
        self.batch_size = settings.batch_size
        self.max_attempts = settings.max_attempts
        self.retry_base_s = settings.retry_base_s
        self.retry_cap_s = settings.retry_cap_s
        self.max_chars = settings.body_max_chars
        self.grace = settings.reindex_grace
        self.retention = settings.outbox_retention
        self._ready = False
        self._busy = 0  # consecutive item-level 429/5xx answers

    # -- the consumer ----------------------------------------------------------------
    def run_once(self, *, only: tuple[str, str] | None = None) -> SyncReport:
        """Claim one batch, index it, mark it.  Raises ``SearchUnavailable`` (and
        leaves the batch untouched) when OpenSearch cannot be reached."""
        report = SyncReport(batches=1)
        try:
            self._ensure_index()
            with self.outbox.claim(self.batch_size, only=only) as claim:
                report.skipped = claim.skipped
                if not claim.rows:
                    return report
                self._apply(claim, report)
        except SearchUnavailable:
            self._ready = False  # check (and if need be rebuild) the alias next time
            raise
        count("SearchIndexed", report.indexed)
        if report.retried:
            count("SearchRetried", report.retried)
        if report.dead_lettered:
            count("SearchDeadLettered", report.dead_lettered)
        return report

    def drain(self, *, deadline: float | None = None, max_batches: int = 10_000) -> SyncReport:
        """Batches until nothing is due (or the deadline, a ``time.monotonic`` value)."""
        total = SyncReport()
        for _ in range(max_batches):
            report = self.run_once()
            total.add(report)
            progress = report.indexed + report.dead_lettered
            if report.rows == 0 or progress == 0:
                break  # nothing due, or only back-offs: stop instead of spinning
            if deadline is not None and time.monotonic() >= deadline:
                break
        return total

    def sync_document(self, org: str, doc_id: str) -> SyncReport:
        """Every due row of one document (the nudge queue's unit of work)."""
        total = SyncReport()
        while True:
            report = self.run_once(only=(org, doc_id))
            total.add(report)
            if report.rows == 0:
                return total

    def _apply(self, claim: Claim, report: SyncReport) -> None:
        by_doc: dict[tuple[str, str], list[OutboxRow]] = defaultdict(list)
        for row in claim.rows:
            by_doc[row.key].append(row)
        docs = [self._document(claim.states.get(key), rows) for key, rows in by_doc.items()]
        targets = [self.index.alias, *claim.building]
        failures: dict[str, ItemResult] = {}
        for result in self.index.write(docs, targets):
            if not result.ok:
                failures.setdefault(result.index_id, result)
        for key, rows in by_doc.items():
            failure = failures.get(index_id(*key))
            report.rows += len(rows)
            if failure is None:
                claim.done(rows)
                report.indexed += 1
                self._busy = 0
                continue
            reason = failure.reason or "unknown error"
            attempts = max(r.attempts for r in rows) + 1
            if failure.retryable:  # OpenSearch busy for this item: back off, do not count
                self._busy += 1  # ... growing with the streak of busy answers instead
                delays = [self._backoff(self._busy) for _ in rows]
                claim.retry(rows, reason, delays, counted=False)
                report.retried += len(rows)
            elif attempts >= self.max_attempts:
                claim.dead_letter(rows, reason)
                report.dead_lettered += len(rows)
                logger.error("search sync dead-lettered", org=key[0], doc_id=key[1], reason=reason)
            else:
                claim.retry(rows, reason, [self._backoff(r.attempts) for r in rows])
                report.retried += len(rows)
                logger.warning("search sync retry", org=key[0], doc_id=key[1], reason=reason)

    def _document(self, state: DocumentState | None, rows: list[OutboxRow]) -> SearchDocument:
        if state is None:  # purged: delete at the newest version the outbox knows
            first = rows[0]
            return SearchDocument(first.org, first.doc_id, max(r.version for r in rows), None)
        return search_document(state, max_chars=self.max_chars)

    def _backoff(self, attempts: int) -> float:
        return full_jitter(attempts, self.retry_base_s, self.retry_cap_s)

    def _ensure_index(self) -> None:
        """The alias must exist; when it does not (first run, or an in-memory
        server that restarted empty), build it from PostgreSQL first.

        A live index of an older schema (mapping, or index id encoding) is not
        written to: documents would get a second entry under their new id, and
        deletes would miss the old one.  The rows wait (nothing is lost) until
        a reindex builds an index of the current schema."""
        if self._ready:
            return
        live = self.index.live_index()
        if live is None:
            logger.info("search alias missing: building it from PostgreSQL")
            self.reindex()
        elif (schema := self.index.schema_version(live)) < SCHEMA_VERSION:
            logger.error(
                "search index schema outdated: run a reindex",
                index=live,
                schema=schema,
                expected=SCHEMA_VERSION,
            )
            raise SearchUnavailable(f"The index {live} predates the current schema; run a reindex.")
        self._ready = True

    def forget_index(self) -> None:
        """Check the alias again on the next batch (after OpenSearch came back)."""
        self._ready = False

    # -- reindex ------------------------------------------------------------------
    def reindex(
        self,
        *,
        batch: int = 1000,
        progress: Callable[[int, int], None] | None = None,
        drop_old_now: bool = False,
    ) -> ReindexReport:
        started = time.monotonic()
        with self.outbox.exclusive_reindex() as mine:
            if not mine:
                raise SearchUnavailable("A reindex is already running; retry when it is done.")
            # indexes still marked building are debris of a reindex that was killed
            # (one runs at a time, under this lock): consumers would keep feeding them
            for leftover in self.outbox.building_indexes():
                logger.warning("dropping the index of an interrupted reindex", index=leftover)
                self.outbox.abandon(leftover)
                self.index.drop_index(leftover)
            old = self.index.live_index()
            new = self.index.next_index_name()
            self.index.create_index(new)
            self.outbox.register_building(new)
            report = ReindexReport(index=new, previous=old)
            try:
                self._backfill(new, batch, report, progress)
                self._catch_up(new, report)
                self.index.refresh(new)
                self.index.swap_alias(old, new)
                self.outbox.retire(new, old, timedelta(0) if drop_old_now else self.grace)
            except BaseException:
                self.outbox.abandon(new)
                self.index.drop_index(new)
                raise
        self.drop_expired()
        report.seconds = time.monotonic() - started
        logger.info("reindex done", **{k: v for k, v in report.__dict__.items() if k != "failed"})
        return report

    def _backfill(
        self,
        new: str,
        batch: int,
        report: ReindexReport,
        progress: Callable[[int, int], None] | None,
    ) -> None:
        total = self.outbox.count_live_documents()
        after: tuple[str, str] | None = None
        while True:
            page = self.outbox.documents_page(after, batch)
            if not page:
                break
            docs = [search_document(r, max_chars=self.max_chars) for r in page]
            report.failed += _failed(self.index.write(docs, [new]))
            report.backfilled += len(page)
            after = (page[-1]["org"], page[-1]["id"])
            if progress is not None:
                progress(report.backfilled, total)

    def _catch_up(self, new: str, report: ReindexReport) -> None:
        changed = self.outbox.changed_since_registration(new)
        keys = sorted(changed)
        for start in range(0, len(keys), 500):
            chunk = set(keys[start : start + 500])
            with self.outbox.lock_documents(chunk) as claim:
                docs = [
                    search_document(state, max_chars=self.max_chars)
                    if state is not None
                    else SearchDocument(key[0], key[1], changed[key], None)  # purged
                    for key, state in claim.states.items()
                ]
                report.failed += _failed(self.index.write(docs, [new]))
                report.caught_up += len(chunk)

    def drop_expired(self) -> list[str]:
        dropped = []
        expired = self.outbox.expired_indexes()
        live = self.index.live_index() if expired else None
        for name in expired:
            if name != live:
                self.index.drop_index(name)
                dropped.append(name)
            self.outbox.abandon(name)
        return dropped

    def prune(self) -> int:
        """Delete processed outbox rows past the retention period (the sweep runs it)."""
        return int(self.outbox.prune(self.retention))

    def stats(self) -> dict[str, float | int]:
        stats = self.outbox.stats()
        milliseconds("SearchSyncLag", stats.lag_s * 1000)
        return stats.as_dict()


def _failed(results: Iterable[ItemResult]) -> list[str]:
    return [f"{r.index_id}: {r.reason}" for r in results if not r.ok]
