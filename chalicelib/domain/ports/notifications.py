"""Share notifications (service_layer/notifications.py): the outbox as their stream,
the users' settings, and the mail service."""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Any, Protocol

from chalicelib.domain.notifications import Contact, Message, ShareEvent
from chalicelib.domain.realtime import StreamRow, StreamStats


class ShareBatch(Protocol):
    """Safe outbox rows after the consumer's cursor (in order), the share events among
    them, and the per-org reads and claims made in the batch's transaction."""

    rows: list[StreamRow]
    events: dict[int, list[ShareEvent]]  # by outbox seq

    def contact(self, org: str, user: str) -> Contact | None:
        """The user's settings (``None``: never set)."""

    def claim(self, org: str, doc_id: str, recipient: str, window_s: int
              ) -> AbstractContextManager[bool]:  # fmt: skip
        """Record a send to ``recipient`` about ``doc_id`` unless one was recorded within
        ``window_s`` (yields whether to send); an exception in the block takes the
        record back (a savepoint), the batch's commit keeps it."""

    def advance(self, txid: int, seq: int) -> None:
        """Move the cursor here when the batch commits."""


class ShareStream(Protocol):
    def batch(self, limit: int) -> AbstractContextManager[ShareBatch]:
        """One consumer at a time holds the cursor; it moves when the block exits cleanly."""

    def stats(self) -> StreamStats: ...


class NotificationSettingsStore(Protocol):
    def get(self, org: str, user: str) -> Contact | None: ...

    def put(self, org: str, user: str, changes: dict[str, Any]) -> Contact:
        """Upsert ``email`` (a sealed envelope or None) and/or ``shares``; the new state."""


class Mailer(Protocol):
    def send(self, message: Message) -> None:
        """Send one e-mail; ``MailRejected`` for good, ``DependencyUnavailable`` for now."""
