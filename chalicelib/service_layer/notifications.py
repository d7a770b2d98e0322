"""Share notifications: the outbox consumer that e-mails a user a grant gave access
to a document, and the user's settings (docs/compliance.md, "Share notifications").

Off the request path: a grant change commits its version, outbox and audit rows
as before (no extra round trip); this consumer reads the outbox with a cursor of
its own (``ShareStream``), finds the grant changes among the rows, and for each
one that gives access (``ShareEvent.gives_access``) mails the grantee when

* they consent to ``notifications`` now (``ConsentService.granted``: never
  recorded is no; a withdrawal holds from the next batch),
* they have not unsubscribed (``shares``) and gave an address, and
* no e-mail about that document went to them within the window (one per hour):
  the send is claimed in the transaction that moves the cursor.

Delivery: rows are handled in cursor order and the cursor moves over each one
handled.  A transient failure (SES throttling or down, the database, the key
service) takes back that row's claim and ends the batch *before* the row: the
next run sends it again (not lost), and rows already mailed keep their claims (no
duplicate).  A refusal for good (``MailRejected``: a bad address) is counted and
skipped.  The one window left: a crash after SES accepted a message and before
the batch committed sends that message again on the next run (at least once).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from chalicelib.domain.errors import DependencyUnavailable
from chalicelib.domain.notifications import (
    Contact,
    MailRejected,
    ShareEvent,
    email_context,
    parse_settings,
    share_message,
)
from chalicelib.domain.ports.notifications import (
    Mailer,
    NotificationSettingsStore,
    ShareBatch,
    ShareStream,
)
from chalicelib.domain.ports.pii import FieldCipher
from chalicelib.domain.principal import Principal
from chalicelib.domain.timestamps import iso_z
from chalicelib.observability import count, logger, milliseconds
from chalicelib.service_layer.retry import retry_transient


@dataclass
class NotifyReport:
    rows: int = 0
    events: int = 0  # grant changes seen
    sent: int = 0
    no_consent: int = 0
    switched_off: int = 0  # the share_notifications flag is off for the org or the grantee
    unsubscribed: int = 0  # shares off, or no address
    throttled: int = 0  # one was sent within the window
    rejected: int = 0  # refused for good by the mail service
    failed: int = 0  # transient failure: the batch stopped before that row
    batches: int = 0

    def add(self, other: NotifyReport) -> None:
        for name in self.__dict__:
            setattr(self, name, getattr(self, name) + getattr(other, name))


class ShareNotifier:
    """The outbox consumer (functions/notify.py; the local stack's sync worker)."""

    def __init__(
        self,
        stream: ShareStream,
        mailer: Mailer | None,
        consented: Callable[[str, str], bool],
        cipher: FieldCipher,
        *,
        window_s: int = 3600,
        link_base: str = "",
        batch_size: int = 200,
        clock: Callable[[], float] = time.monotonic,
        switched_on: Callable[[str, str], bool] = lambda org, user: True,
    ) -> None:
        self.stream = stream
        # the share_notifications flag (docs/feature-flags.md) per org and grantee: off,
        # the grant's e-mail is skipped, not kept for later (the cursor moves on)
        self.switched_on = switched_on
        self.mailer = mailer  # None: no sender identity configured, notifications off
        self.consented = consented
        self.cipher = cipher
        self.window_s = window_s
        self.link_base = link_base
        self.batch_size = batch_size
        self.clock = clock

    @property
    def enabled(self) -> bool:
        return self.mailer is not None

    def drain(self, budget_s: float = 20.0) -> NotifyReport:
        """Batches until caught up, a transient failure, or ``budget_s`` is spent.
        Off (no sender): claims nothing, so the cursor starts when it is turned on.
        Either way every run publishes ``NotificationLag`` (0 when off: nothing is
        owed), so its alarm can treat a silent schedule as a failure."""
        total = NotifyReport()
        if not self.enabled:
            milliseconds("NotificationLag", 0.0)
            return total
        deadline = self.clock() + budget_s
        while True:
            report = self.run_batch()
            total.add(report)
            if report.failed or report.rows < self.batch_size or self.clock() >= deadline:
                break
        milliseconds("NotificationLag", self.stream.stats().lag_s * 1000)
        return total

    def run_batch(self) -> NotifyReport:
        report = NotifyReport(batches=1)
        with self.stream.batch(self.batch_size) as batch:
            report.rows = len(batch.rows)
            for row in batch.rows:
                try:
                    for event in batch.events.get(row.seq, ()):
                        report.events += 1
                        self._deliver(batch, event, report)
                except DependencyUnavailable as exc:
                    report.failed += 1
                    count("NotificationSendFailures")
                    logger.warning(
                        "share notification deferred",
                        extra={"org": row.org, "doc_id": row.doc_id, "error": type(exc).__name__},
                    )
                    break
                batch.advance(row.txid, row.seq)
        if report.sent:
            count("NotificationsSent", report.sent)
        return report

    def _deliver(self, batch: ShareBatch, event: ShareEvent, report: NotifyReport) -> None:
        if not event.gives_access:
            return
        org, user = event.org, event.grantee
        if not self.switched_on(org, user):
            report.switched_off += 1
            return
        if not self.consented(org, user):
            report.no_consent += 1
            return
        contact = batch.contact(org, user)
        if contact is None or not contact.shares or not contact.email:
            report.unsubscribed += 1
            return
        to = str(self.cipher.decrypt(contact.email, context=email_context(org, user)))
        assert self.mailer is not None
        with batch.claim(org, event.doc_id, user, self.window_s) as fresh:
            if not fresh:
                report.throttled += 1
                return
            try:
                self.mailer.send(share_message(event, to, self.link_base))
            except MailRejected as exc:  # kept claimed: the same address fails the same way
                report.rejected += 1
                count("NotificationSendFailures")
                logger.warning("share notification rejected", extra={"org": org, "code": str(exc)})
                return
        report.sent += 1


class NotificationSettingsService:
    """``GET/PUT /me/notification-settings``: the caller's address and unsubscribe switch."""

    def __init__(self, store: NotificationSettingsStore, cipher: FieldCipher) -> None:
        self.store = store
        self.cipher = cipher

    def mine(self, who: Principal) -> dict[str, Any]:
        who.require("reader")
        return self.render(who.org, who.sub, self.store.get(who.org, who.sub))

    @retry_transient()
    def change(self, who: Principal, body: Any) -> dict[str, Any]:
        who.require("reader")
        changes = parse_settings(body)
        if changes.get("email") is not None:
            changes["email"] = self.cipher.encrypt(
                changes["email"], context=email_context(who.org, who.sub), blind=None
            )
        return self.render(who.org, who.sub, self.store.put(who.org, who.sub, changes))

    def render(self, org: str, user: str, contact: Contact | None) -> dict[str, Any]:
        """The settings in clear (for their user: the answer, the export)."""
        if contact is None:
            return {"email": None, "shares": True, "updated_at": None}
        email = None
        if contact.email:
            email = str(self.cipher.decrypt(contact.email, context=email_context(org, user)))
        updated = iso_z(contact.updated_at) if contact.updated_at else None
        return {"email": email, "shares": contact.shares, "updated_at": updated}

    def export(self, org: str, user: str, row: dict[str, Any] | None) -> dict[str, Any] | None:
        """The stored row of the subject's export, opened (None: never set)."""
        if row is None:
            return None
        return self.render(org, user, Contact(row["email"], row["shares"], row["updated_at"]))
