"""The access review's pure rules: stale grants, the role rule, attestation bodies, CSV."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from chalicelib.api.access_review import _cell, _wants_csv
from chalicelib.domain.access_review import (
    DocumentAccess,
    GrantAccess,
    parse_attestation,
    parse_view,
)
from chalicelib.domain.errors import ValidationFailed

NOW = datetime(2026, 12, 1, tzinfo=UTC)
WINDOW = timedelta(days=90)


@pytest.mark.parametrize(
    ("granted_days_ago", "active_days_ago", "stale"),
    [
        (10, None, False),  # young grant: not stale yet
        (100, None, True),  # old, never used (or only read): stale
        (100, 95, True),  # old, last used before the window
        (100, 5, False),  # old, used within the window
    ],
)
def test_a_grant_is_stale_when_old_and_unused_within_the_window(
    granted_days_ago: int, active_days_ago: int | None, stale: bool
) -> None:
    active = NOW - timedelta(days=active_days_ago) if active_days_ago is not None else None
    grant = GrantAccess("bob", "reader", "alice", NOW - timedelta(days=granted_days_ago), active)
    assert grant.stale(NOW, WINDOW) is stale


def test_the_role_rule_follows_visibility() -> None:
    grants = (
        GrantAccess("bob", "writer", "o", NOW, None),
        GrantAccess("cy", "reader", "o", NOW, None),
    )
    private = DocumentAccess("d", "private", "olga", grants).to_json(NOW, WINDOW)
    assert private["readers"] == {"role": "admin", "users": ["olga", "bob", "cy"]}
    assert private["writers"] == {"role": "admin", "users": ["olga", "bob"]}
    open_ = DocumentAccess("d", "org", "olga", ()).to_json(NOW, WINDOW)
    assert (open_["readers"]["role"], open_["writers"]["role"]) == ("reader", "writer")


@pytest.mark.parametrize(
    "body",
    [None, [], {}, {"notes": None}, {"notes": "x", "revoked": {}},
     {"notes": "x", "revoked": [{"document": "", "user": "u"}]},
     {"notes": "x", "revoked": [{"document": "d", "user": " u"}]},
     {"notes": "x", "revoked": [{"document": "d", "user": "u", "role": "r"}]}],
)  # fmt: skip
def test_invalid_attestations(body: Any) -> None:
    with pytest.raises(ValidationFailed):
        parse_attestation(body)


def test_a_valid_attestation() -> None:
    assert parse_attestation({"notes": ""}) == ("", ())
    assert parse_attestation({"notes": "", "revoked": None}) == ("", ())
    body = {"notes": "q4", "revoked": [{"document": "d", "user": "u"}]}
    assert parse_attestation(body) == ("q4", (("d", "u"),))
    assert parse_view(None) == "documents" and parse_view("users") == "users"


def test_csv_is_chosen_by_accept_and_formulas_stay_text() -> None:
    assert _wants_csv("text/csv")
    assert _wants_csv("text/csv, application/json;q=0.5")
    assert not _wants_csv("application/json, text/csv")
    assert not _wants_csv(None) and not _wants_csv("*/*")
    assert [_cell(v) for v in ("=1+1", "+x", "-x", "@x", "bob", None, True)] == [
        "'=1+1", "'+x", "'-x", "'@x", "bob", "", "true",
    ]  # fmt: skip
