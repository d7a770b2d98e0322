"""Webhooks' pure rules (chalicelib/domain/webhooks.py) and the deliverer's retry and
disable decisions (chalicelib/service_layer/webhooks.py), without a database."""

from __future__ import annotations

import random
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

import pytest

from chalicelib.config_webhooks import WebhookSettings
from chalicelib.domain.errors import ValidationFailed
from chalicelib.domain.ports.webhooks import FanIn, StreamItem
from chalicelib.domain.webhooks import (
    EVENT_TYPES,
    Endpoint,
    Job,
    Outcome,
    backoff_s,
    event_type,
    parse_registration,
    payload,
    sign,
)
from chalicelib.service_layer.webhooks import Deliverer

NOW = datetime(2026, 12, 7, 1, 0, tzinfo=UTC)


def test_the_signature_matches_the_standard_webhooks_test_vector() -> None:
    """The specification's reference vector (its libraries test the same one)."""
    header = sign(
        ["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"], "msg_p5jXN8AQM9LWM0D4loKWxJek",
        1614265330, b'{"test": 2432232314}',
    )  # fmt: skip
    assert header == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def test_two_secrets_sign_space_separated() -> None:
    one = sign(["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"], "m", 1, b"{}")
    both = sign(["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "whsec_AAAA"], "m", 1, b"{}")
    assert both.split(" ")[0] == one and len(both.split(" ")) == 2


@pytest.mark.parametrize(
    ("op", "action", "expected"),
    [
        ("upsert", "create", "document.created"),
        ("upsert", "replace", "document.updated"),
        ("upsert", "change", "document.updated"),
        ("upsert", "restore-version:3", "document.updated"),
        ("delete", "delete", "document.deleted"),
        ("upsert", "restore", "document.restored"),
        ("upsert", "grant.put", "grant.changed"),
        ("upsert", "grant.delete", "grant.changed"),
        ("upsert", "visibility.change", "grant.changed"),
        ("upsert", "content-ready", "upload.processed"),
        ("upsert", "content-rejected", "upload.processed"),
        ("purge", None, "document.purged"),
        ("delete", "erasure-delete", "document.deleted"),
        ("upsert", "erasure-reassign", "document.updated"),
        ("upsert", None, "document.updated"),  # the version was purged away meanwhile
    ],
)
def test_every_event_type_is_produced(op: str, action: str | None, expected: str) -> None:
    assert event_type(op, action) == expected


def test_the_mapping_covers_every_offered_type() -> None:
    produced = {event_type(o, a) for o, a in [("upsert", "create"), ("upsert", "change"),
                ("delete", None), ("upsert", "restore"), ("upsert", "grant.put"),
                ("upsert", "content-ready"), ("purge", None)]}  # fmt: skip
    assert produced == set(EVENT_TYPES)


def test_the_payload_carries_ids_and_versions_only() -> None:
    body = payload("document.updated", "acme", "d1", 3, NOW, seq=9)
    assert body == {
        "type": "document.updated",
        "timestamp": "2026-12-07T01:00:00.000Z",
        "data": {"org": "acme", "id": "d1", "version": 3, "seq": 9},
    }


def test_backoff_grows_is_capped_and_jittered() -> None:
    rnd = random.Random(7)
    delays = [backoff_s(n, base_s=10, cap_s=3600, rnd=rnd) for n in range(1, 12)]
    assert 5 <= delays[0] <= 10 and 10 <= delays[1] <= 20 and 20 <= delays[2] <= 40
    assert all(d <= 3600 for d in delays) and delays[-1] >= 1800
    assert len({round(d, 6) for d in delays}) == len(delays)  # jittered


def test_filters_by_event_and_tags() -> None:
    e = Endpoint("w", "https://h.example.com/", ("document.created",), ("billing",))
    assert e.wants("document.created", ("billing", "x"))
    assert not e.wants("document.created", ("other",))
    assert not e.wants("document.updated", ("billing",))
    assert Endpoint("w", "u", ("document.purged",), ("billing",)).wants("document.purged", None)


@pytest.mark.parametrize(
    "body",
    [None, [], {"url": "https://h.example.com/"}, {"url": "u", "events": []},
     {"url": "u", "events": ["document.nope"]}, {"url": "u", "events": ["document.created"],
      "tags": "x"}, {"url": "u", "events": ["document.created"], "org": "other"}],
)  # fmt: skip
def test_registration_bodies_are_validated(body: object) -> None:
    with pytest.raises(ValidationFailed):
        parse_registration(body)


def _job(attempts: int = 0, failures: int = 0, failing_since: datetime | None = None) -> Job:
    return Job("acme", "msg_1", "w", "https://h.example.com/", (), b"{}", attempts,
               NOW - timedelta(hours=1), failures, failing_since)  # fmt: skip


def _deliverer(**kw: float) -> Deliverer:
    return Deliverer(None, None, None, WebhookSettings(**kw))  # type: ignore[arg-type]


FAIL = Outcome(500, "HTTP 500", 5)


def test_a_failure_is_retried_inside_the_window_and_dead_after_it() -> None:
    d = _deliverer(retry_base_s=10, retry_cap_s=3600, retry_window_s=86_400)
    result = d._result(_job(attempts=0), FAIL, NOW)
    assert result.status == "pending" and result.next_attempt_at > NOW
    assert result.next_attempt_at <= NOW + timedelta(seconds=10)
    late = _deliverer(retry_base_s=10, retry_cap_s=3600, retry_window_s=3600)
    assert late._result(_job(attempts=20), FAIL, NOW).status == "dead"
    assert d._result(_job(), Outcome(204, None, 1), NOW).status == "delivered"


def test_an_endpoint_is_disabled_only_after_failing_long_and_often_enough() -> None:
    d = _deliverer(disable_after_failures=20, disable_after_s=86_400)
    long_ago = NOW - timedelta(days=2)
    assert d._result(_job(failures=5, failing_since=long_ago), FAIL, NOW).disable_reason is None
    recent = NOW - timedelta(hours=1)
    assert d._result(_job(failures=50, failing_since=recent), FAIL, NOW).disable_reason is None
    result = d._result(_job(failures=19, failing_since=long_ago), FAIL, NOW)
    assert result.disable_reason is not None and "20 failed attempts" in result.disable_reason
    assert result.audit is not None and result.audit.action == "webhook.disable"


class _FanInQueue:
    """The fan-in side of the queue port: one batch of rows of two orgs."""

    def __init__(self, batch: FanIn) -> None:
        self.batch = batch

    @contextmanager
    def fan_in(self, limit: int) -> Iterator[FanIn]:
        yield self.batch


def test_the_webhooks_flag_off_for_an_org_makes_no_deliveries_for_it() -> None:
    hook = Endpoint("w1", "https://h.example.com/", ("document.updated",), ())
    items = [
        StreamItem(100 + i, i, org, "d1", 2, "upsert", NOW, "update", ())
        for i, org in enumerate(("off", "on", "off"))
    ]
    batch = FanIn(items, {"off": [hook], "on": [hook]})
    asked: list[str] = []

    def switched_on(org: str) -> bool:
        asked.append(org)
        return org == "on"

    d = Deliverer(_FanInQueue(batch), None, None, WebhookSettings(), switched_on=switched_on)  # type: ignore[arg-type]
    assert d.fan_in() == (3, 1)
    assert [(x.org, x.seq) for x in batch.deliveries] == [("on", 1)]
    assert batch.advance_to == (102, 2)  # past the switched-off rows: nothing kept for later
    assert asked == ["off", "on", "off"]
