"""Consent use cases against a fake store: the state of every configured purpose,
the body's rules, and the check the rest of the service calls."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from chalicelib.domain.consents import ConsentChange, ConsentState, parse_consents
from chalicelib.domain.errors import Forbidden, ValidationFailed
from chalicelib.domain.model import Change
from chalicelib.domain.principal import Principal
from chalicelib.service_layer.consents import CONSENT_ACTION, ConsentService
from chalicelib.settings_groups import ConsentSettings

AT = datetime(2026, 12, 7, tzinfo=UTC)
PURPOSES = ("notifications", "analytics")


class FakeConsentRecords:
    def __init__(self) -> None:
        self.rows: list[tuple[str, str, ConsentState]] = []
        self.changes: list[Change] = []

    def current(self, org: str, user: str) -> list[ConsentState]:
        newest = {s.purpose: s for o, u, s in self.rows if (o, u) == (org, user)}
        return list(newest.values())

    def record(self, org: str, user: str, consents: ConsentChange, change: Change
               ) -> list[ConsentState]:  # fmt: skip
        for purpose, granted in consents.choices.items():
            self.rows.append(
                (org, user, ConsentState(purpose, granted, AT, consents.policy_version))
            )
        self.changes.append(change)
        return self.current(org, user)


def service() -> tuple[ConsentService, FakeConsentRecords]:
    records = FakeConsentRecords()
    return ConsentService(records, ConsentSettings(PURPOSES, "v2")), records


def test_every_purpose_is_in_the_state_and_none_is_granted_by_default() -> None:
    svc, _ = service()
    state = svc.mine(Principal("alice", "acme", frozenset({"reader"})))
    assert state == {"consents": {p: {"granted": False, "at": None, "policy_version": None}
                                  for p in PURPOSES}}  # fmt: skip


def test_a_change_is_recorded_under_the_policy_in_force_and_audited_as_the_caller() -> None:
    svc, records = service()
    who = Principal("alice", "acme", frozenset({"reader"}), request_id="r1")
    state = svc.change(who, {"consents": {"analytics": True}})
    assert state["consents"]["analytics"] == {
        "granted": True, "at": "2026-12-07T00:00:00.000Z", "policy_version": "v2",
    }  # fmt: skip
    assert records.changes == [Change(CONSENT_ACTION, "alice", "r1", None)]
    assert svc.granted("acme", "alice", "analytics")
    assert not svc.granted("acme", "alice", "notifications")
    assert not svc.granted("other", "alice", "analytics")
    with pytest.raises(ValueError, match="not a configured consent purpose"):
        svc.granted("acme", "alice", "marketing")


def test_only_an_admin_reads_another_users_consents() -> None:
    svc, _ = service()
    with pytest.raises(Forbidden):
        svc.of_user(Principal("bob", "acme", frozenset({"writer"})), "alice")
    assert svc.of_user(Principal("root", "acme", frozenset({"admin"})), "alice")["user"] == "alice"


@pytest.mark.parametrize(
    "body",
    [
        None, [], {}, {"consents": {}}, {"consents": {"marketing": True}},
        {"consents": {"analytics": "true"}}, {"consents": {"analytics": True}, "x": 1},
        {"consents": {"analytics": True}, "policy_version": "v1"},
    ],
)  # fmt: skip
def test_a_bad_body_is_refused_with_errors(body: Any) -> None:
    with pytest.raises(ValidationFailed) as caught:
        parse_consents(body, PURPOSES, "v2")
    assert caught.value.errors


def test_the_policy_version_may_be_repeated_or_left_out() -> None:
    for extra in ({}, {"policy_version": "v2"}, {"policy_version": None}):
        change = parse_consents({"consents": {"analytics": False}, **extra}, PURPOSES, "v2")
        assert change == ConsentChange({"analytics": False}, "v2")
