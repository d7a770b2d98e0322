"""The webhook ports: the store (endpoints, deliveries, attempts), the
deliverer's outbox stream, the secret box and the sender (docs/webhooks.md)."""

from __future__ import annotations

from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from chalicelib.domain.audit import AuditEntry
from chalicelib.domain.webhooks import Delivery, Endpoint, Job, Outcome


@dataclass(frozen=True)
class StreamItem:
    """An outbox row as the deliverer reads it, with its version's action and tags
    (None when the version is gone: purged)."""

    txid: int
    seq: int
    org: str
    doc_id: str
    version: int
    op: str
    created_at: datetime
    action: str | None
    tags: tuple[str, ...] | None


@dataclass(frozen=True)
class NewDelivery:
    org: str
    id: str
    endpoint_id: str
    seq: int
    event_type: str
    doc_id: str
    version: int
    payload: dict[str, Any]


@dataclass
class FanIn:
    """One claimed batch: the safe rows after the cursor, the active endpoints of
    their orgs; the caller adds deliveries and says where the cursor goes."""

    items: list[StreamItem]
    endpoints: dict[str, list[Endpoint]]
    deliveries: list[NewDelivery] = field(default_factory=list)
    advance_to: tuple[int, int] | None = None


@dataclass(frozen=True)
class Result:
    """What an attempt changes: the delivery's status and next time, and the
    endpoint's failure run (``disable``: with this reason and audit row)."""

    status: str  # pending | delivered | dead
    next_attempt_at: datetime
    disable_reason: str | None = None
    audit: AuditEntry | None = None


class WebhookStore(Protocol):
    """The API's side; each call is one tenant-scoped transaction of ``org``."""

    def create(
        self, org: str, endpoint: Endpoint, sealed: str, audit: AuditEntry, *, cap: int
    ) -> Endpoint | None:
        """Store it (None, nothing stored: the org already has ``cap`` endpoints)."""

    def endpoints(self, org: str) -> list[Endpoint]: ...

    def delete(self, org: str, endpoint_id: str, audit: AuditEntry) -> bool: ...

    def rotate(
        self, org: str, endpoint_id: str, sealed: str, until: datetime, audit: AuditEntry
    ) -> Endpoint | None:
        """The current secret becomes the previous one until ``until``."""

    def deliveries(self, org: str, endpoint_id: str, *, limit: int) -> list[Delivery] | None:
        """Newest first, each with its attempts (None: no such endpoint)."""

    def replay(
        self, org: str, endpoint_id: str, delivery_id: str, now: datetime, audit: AuditEntry
    ) -> Delivery | None:
        """A dead (or delivered) delivery pending again now, with a new retry window;
        its endpoint enabled again.  ``Conflict`` while it is pending."""


class WebhookQueue(Protocol):
    """The deliverer's side, across orgs."""

    def fan_in(self, limit: int) -> AbstractContextManager[FanIn]:
        """Claim a batch from the deliverer's cursor; on a clean exit store the
        deliveries added and move the cursor, in one transaction."""

    def due(self, now: datetime, limit: int) -> list[tuple[str, str]]: ...

    def lease(self, org: str, delivery_id: str, now: datetime, until: datetime) -> Job | None:
        """Take the delivery until ``until`` (None: someone else took it, or it is
        no longer due); its secrets are opened by the caller."""

    def record(self, job: Job, outcome: Outcome, result: Result, now: datetime) -> None:
        """The attempt, the delivery's new state and the endpoint's, in one transaction."""

    def stats(self) -> tuple[float, int, int, float]:
        """(cursor lag s, rows after the cursor, pending deliveries, oldest pending s)."""


class SecretBox(Protocol):
    def seal(self, secret: str, context: str) -> str: ...

    def open(self, sealed: str, context: str) -> str: ...


class Sender(Protocol):
    def send(self, url: str, headers: dict[str, str], body: bytes) -> Outcome:
        """POST ``body``; never raises (a refused target or a network error is an
        ``Outcome`` with ``error``)."""
