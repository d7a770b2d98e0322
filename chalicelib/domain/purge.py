"""A purged document's outside traces still to remove."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PurgeTask:
    """A purged document whose outside traces (objects, cache, subscriptions) are
    still to be removed: recorded in the purge's own transaction, so none is lost."""

    id: int
    org: str
    doc_id: str
    keys: list[str]  # the content object keys of every upload the document had
    attempts: int = 0
    version: int = 0  # the purge's outbox version (set by the run that purged it)
