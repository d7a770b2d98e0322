"""Share notifications without I/O: who is told, what the e-mail says, the settings
body, and the consumer's delivery rules over fakes of its ports."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import pytest

from chalicelib.domain.errors import DependencyUnavailable, ValidationFailed
from chalicelib.domain.notifications import (
    Contact,
    MailRejected,
    Message,
    ShareEvent,
    parse_settings,
    share_message,
)
from chalicelib.domain.realtime import StreamRow, StreamStats
from chalicelib.service_layer.notifications import ShareNotifier


def _event(doc: str = "d1", previous: str | None = None, role: str = "reader",
           grantee: str = "bob", actor: str = "alice") -> ShareEvent:  # fmt: skip
    return ShareEvent("o", doc, 2, grantee, actor, role, previous)


@pytest.mark.parametrize(
    ("previous", "role", "grantee", "told"),
    [(None, "reader", "bob", True), (None, "writer", "bob", True),
     ("reader", "writer", "bob", True), ("writer", "reader", "bob", False),
     (None, "reader", "alice", False)],
)  # fmt: skip
def test_only_a_grant_that_gives_access_tells_the_grantee(
    previous: str | None, role: str, grantee: str, told: bool
) -> None:
    assert _event(previous=previous, role=role, grantee=grantee).gives_access is told


def test_the_message_names_the_sharer_and_the_link_only() -> None:
    m = share_message(_event(role="writer"), "bob@example.com", "https://app.example/")
    assert m.to == "bob@example.com"
    assert "alice shared a document with you: you can now edit it." in m.text
    assert "https://app.example/documents/d1\n" in m.text


def test_the_settings_body() -> None:
    assert parse_settings({"email": "a.b+c@x.example", "shares": False}) == {
        "email": "a.b+c@x.example", "shares": False}  # fmt: skip
    assert parse_settings({"email": None}) == {"email": None}
    for bad in ({}, {"shares": 1}, {"email": 3}, {"x": 1}, None, {"email": "a@b.c\n"}):
        with pytest.raises(ValidationFailed):
            parse_settings(bad)


class _Batch:
    def __init__(self, events: list[ShareEvent], claims: set[tuple[str, str]]) -> None:
        self.rows = [StreamRow(100 + i, i, "o", e.doc_id, 2, "upsert", datetime.now(UTC))
                     for i, e in enumerate(events)]  # fmt: skip
        self.events = {i: [e] for i, e in enumerate(events)}
        self.claims = claims
        self.advanced_to: tuple[int, int] | None = None

    def contact(self, org: str, user: str) -> Contact | None:
        return Contact({"sealed": f"{user}@example.com"}, True)

    @contextmanager
    def claim(self, org: str, doc_id: str, recipient: str, window_s: int) -> Iterator[bool]:
        key = (doc_id, recipient)
        fresh = key not in self.claims
        self.claims.add(key)
        try:
            yield fresh
        except BaseException:
            self.claims.discard(key)  # the savepoint rolls back
            raise

    def advance(self, txid: int, seq: int) -> None:
        self.advanced_to = (txid, seq)


class _Stream:
    def __init__(self, batch: _Batch) -> None:
        self.last = batch

    @contextmanager
    def batch(self, limit: int) -> Iterator[_Batch]:
        yield self.last

    def stats(self) -> StreamStats:
        return StreamStats(0.0, 0)


class _Cipher:
    def decrypt(self, envelope: dict[str, Any], *, context: str) -> Any:
        return envelope["sealed"]


class _Mailer:
    def __init__(self, fail: dict[str, Exception]) -> None:
        self.fail = fail
        self.sent: list[Message] = []

    def send(self, message: Message) -> None:
        if message.to in self.fail:
            raise self.fail[message.to]
        self.sent.append(message)


def _notifier(batch: _Batch, mailer: _Mailer, consent: bool = True) -> ShareNotifier:
    return ShareNotifier(_Stream(batch), mailer, lambda o, u: consent, _Cipher(),  # type: ignore[arg-type]
                         batch_size=10)  # fmt: skip


def test_a_transient_failure_stops_before_its_row_and_takes_its_claim_back() -> None:
    events = [_event("d1", grantee="ann"), _event("d2", grantee="bob"), _event("d3", grantee="cy")]
    batch = _Batch(events, set())
    mailer = _Mailer({"bob@example.com": DependencyUnavailable("down")})
    report = _notifier(batch, mailer).run_batch()
    assert report.sent == 1 and report.failed == 1
    assert [m.to for m in mailer.sent] == ["ann@example.com"]
    assert batch.advanced_to == (100, 0)  # past ann's row, not bob's
    assert batch.claims == {("d1", "ann")}


def test_a_refusal_for_good_is_skipped_and_a_claim_within_the_window_sends_nothing() -> None:
    events = [_event("d1", grantee="ann"), _event("d2", grantee="bob")]
    batch = _Batch(events, {("d2", "bob")})
    mailer = _Mailer({"ann@example.com": MailRejected("MessageRejected")})
    report = _notifier(batch, mailer).run_batch()
    assert (report.rejected, report.throttled, report.sent) == (1, 1, 0)
    assert batch.advanced_to == (101, 1)


def test_no_sender_claims_nothing() -> None:
    batch = _Batch([_event()], set())
    off = ShareNotifier(_Stream(batch), None, lambda o, u: True, _Cipher())  # type: ignore[arg-type]
    assert off.drain().batches == 0 and batch.advanced_to is None


def test_the_share_notifications_flag_off_for_a_grantee_skips_only_their_mail() -> None:
    events = [_event("d1", grantee="ann"), _event("d2", grantee="bob")]
    batch = _Batch(events, set())
    mailer = _Mailer({})
    asked: list[tuple[str, str]] = []

    def switched_on(org: str, user: str) -> bool:
        asked.append((org, user))
        return user != "bob"

    notifier = ShareNotifier(_Stream(batch), mailer, lambda o, u: True, _Cipher(),  # type: ignore[arg-type]
                             batch_size=10, switched_on=switched_on)  # fmt: skip
    report = notifier.run_batch()
    assert [m.to for m in mailer.sent] == ["ann@example.com"]
    assert (report.sent, report.switched_off) == (1, 1)
    assert [user for _, user in asked] == ["ann", "bob"]
    assert batch.advanced_to == (101, 1)  # skipped, not kept for later
    assert batch.claims == {("d1", "ann")}  # nothing claimed for bob: no throttle when it turns on


def test_every_run_publishes_the_lag_its_alarm_reads(monkeypatch: pytest.MonkeyPatch) -> None:
    """``NotificationLagAlarm`` treats missing data as a failure (a schedule that stopped),
    so a run publishes ``NotificationLag`` whether or not a sender is configured: 0 when
    off (nothing is owed), the stream's lag when on, in milliseconds as the alarm reads."""
    from chalicelib.service_layer import notifications

    published: list[tuple[str, float]] = []
    monkeypatch.setattr(notifications, "milliseconds", lambda n, v: published.append((n, v)))
    batch = _Batch([_event()], set())
    ShareNotifier(_Stream(batch), None, lambda o, u: True, _Cipher()).drain()  # type: ignore[arg-type]
    assert published == [("NotificationLag", 0.0)]
    published.clear()
    stream = _Stream(_Batch([], set()))
    stream.stats = lambda: StreamStats(2.5, 3)  # type: ignore[method-assign]
    ShareNotifier(stream, _Mailer({}), lambda o, u: True, _Cipher()).drain()  # type: ignore[arg-type]
    assert published == [("NotificationLag", 2500.0)]
