"""The purge's database side and the outside traces it removes."""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from chalicelib.domain.purge import PurgeTask


class PurgeStore(Protocol):
    """The purge's database side (adapters/postgres/purge.py)."""

    def due(self, cutoff: datetime, limit: int) -> list[tuple[str, str]]:
        """(org, id) of documents deleted before ``cutoff`` (ids only, every org)."""

    def purge(
        self, org: str, doc_id: str, cutoff: datetime, *, request_id: str | None = None
    ) -> PurgeTask | None:
        """One transaction of ``org``: remove the document, its versions, text,
        uploads and grants; record a purge task, a 'purge' outbox row and the
        pseudonymous audit row (the version before and after, and ``request_id``:
        the run's id).  None if it is no longer due (restored, reused)."""

    def pending(self, limit: int) -> list[PurgeTask]:
        """Purge tasks whose outside traces are not all removed yet (every org)."""

    def finish(self, task: PurgeTask) -> None: ...

    def failed(self, task: PurgeTask, reason: str) -> None: ...


class ObjectPurger(Protocol):
    def delete_every_version(self, keys: list[str]) -> int:
        """Delete every version and delete marker of each key (exact keys only);
        returns how many were deleted.  Raises ``DependencyUnavailable``."""


class SubscriptionDropper(Protocol):
    """The real-time registry's hook: drop every subscription to a document
    (wired by the composition root once the real-time registry exists)."""

    def __call__(self, org: str, doc_id: str) -> None: ...
