"""The outbox as the search sync's stream, the index registry, and the after-commit nudge."""

from __future__ import annotations

from contextlib import AbstractContextManager
from datetime import timedelta
from typing import Any, Protocol

from chalicelib.domain.model import Document
from chalicelib.domain.outbox import DocumentState, OutboxRow, OutboxStats


class OutboxNudge(Protocol):
    """Wakes the outbox's consumers (the search sync, the real-time fan-out)."""

    def __call__(self, doc: Document) -> None:
        """After a commit: wake the consumers for ``doc`` (best effort: a lost
        nudge only delays them until their scheduled sweep)."""


class Claim(Protocol):
    """A claimed batch of outbox rows, inside its open transaction: nothing is
    marked unless the block that holds the claim exits cleanly."""

    @property
    def rows(self) -> list[OutboxRow]:
        """Rows of the documents this consumer locked."""

    @property
    def skipped(self) -> int:
        """Rows left for the consumer that holds their document."""

    @property
    def states(self) -> dict[tuple[str, str], DocumentState | None]:
        """Each locked document's current state (None: purged or not visible)."""

    @property
    def building(self) -> list[str]:
        """Indexes a reindex is building: every batch writes to them as well."""

    def done(self, rows: list[OutboxRow]) -> None: ...

    def retry(
        self, rows: list[OutboxRow], reason: str, delays: list[float], *, counted: bool = True
    ) -> None:
        """Back off; ``counted=False`` for transient refusals (429/5xx of one item),
        which never push a row towards the dead-letter table."""

    def dead_letter(self, rows: list[OutboxRow], reason: str) -> None: ...


class IndexRegistry(Protocol):
    """The search indexes' registry and the reindex's reads (cross-org maintenance:
    ids, versions and status of every org; content under each document's org)."""

    def exclusive_reindex(self) -> AbstractContextManager[bool]:
        """Held for a whole reindex: True if this caller got it (one reindex at a time)."""

    def building_indexes(self) -> list[str]: ...

    def register_building(self, name: str) -> None: ...

    def documents_page(self, after: tuple[str, str] | None, limit: int) -> list[DocumentState]:
        """Live documents in (org, id) order, after ``after`` (the backfill)."""

    def count_live_documents(self) -> int: ...

    def changed_since_registration(self, name: str) -> dict[tuple[str, str], int]:
        """Documents (and their newest outbox version) of every transaction that
        could have committed after ``name`` was registered."""

    def retire(self, new: str, old: str | None, grace: timedelta) -> None: ...

    def abandon(self, name: str) -> None: ...

    def expired_indexes(self) -> list[str]: ...


class Outbox(IndexRegistry, Protocol):
    """The outbox as the search sync's stream (and, through ``IndexRegistry``, the
    reindex's side).

    Cross-org maintenance: it sees ids, versions and status of every org, and
    each document's content only under that document's org."""

    def claim(
        self, limit: int, *, only: tuple[str, str] | None = None
    ) -> AbstractContextManager[Claim]:
        """Claim up to ``limit`` due rows (all of one document with ``only``)."""

    def lock_documents(self, keys: set[tuple[str, str]]) -> AbstractContextManager[Claim]:
        """Lock documents (waiting for a consumer that holds one) and read their state."""

    def stats(self) -> OutboxStats: ...

    def dead_letters(self, org: str | None = None, limit: int = 1000) -> list[dict[str, Any]]: ...

    def requeue_dead_letters(self, org: str | None = None) -> int: ...

    def prune(self, older_than: timedelta, *, batch: int = 5000, max_batches: int = 20) -> int:
        """Delete processed rows older than ``older_than``; pending rows are kept."""
