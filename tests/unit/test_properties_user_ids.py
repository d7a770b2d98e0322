"""The one user-id rule (domain/user_id.py) and every place a user id enters:
a token's ``sub``, a grantee, an erased user and its ``reassign:`` target, the
audit filter and the search filter ``owner``."""

from __future__ import annotations

import unicodedata
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chalicelib.api.auth import principal_from_claims
from chalicelib.domain.access import validate_grantee
from chalicelib.domain.errors import Unauthorized, ValidationFailed
from chalicelib.domain.search import parse_search_request
from chalicelib.domain.user_id import user_id_problem, validate_user_id
from chalicelib.service_layer.personal_data import parse_erasure, validate_user
from tests.unit.properties import BOUNDED

# ids the service must keep taking: test names, Cognito subs (UUIDs), e-mail
# addresses, names with an inner space, non-ASCII names in NFC
GOOD = [
    "alice", "u-1", "bencher", "a", "rsa-user", "faults-watcher",
    "3f1c2d4e-5b6a-4c7d-8e9f-0a1b2c3d4e5f", "bob@example.com", "bob@example.com x",
    "o'brien+tag@example.org", "a:b", "Zoë", "渡辺", "x" * 256,
]  # fmt: skip
LOOK_ALIKES = [
    " bob", "bob ", " ", "", "*", "/", "bob/alice", "b*b", "bob  x", "bob\t", "\tbob",
    "bob\u00a0", "bo\u200bb", "\u202ebob", "bob\n", "bo\x00b", "bob\x7f", "bo\u2028b",
    "Zoe\u0308", "x" * 257, "\u3000bob",
]  # fmt: skip


@pytest.mark.parametrize("user", GOOD)
def test_the_ids_in_use_are_user_ids(user: str) -> None:
    assert user_id_problem(user) is None
    assert validate_user_id(user, ["path", "user"]) == user


@pytest.mark.parametrize("user", [*LOOK_ALIKES, None, 7, ["bob"]])
def test_look_alikes_and_non_text_are_refused(user: Any) -> None:
    assert user_id_problem(user) is not None
    with pytest.raises(ValidationFailed) as caught:
        validate_user_id(user, ["path", "user"])
    assert caught.value.errors and caught.value.errors[0]["loc"] == ["path", "user"]


def _claims(sub: Any) -> dict[str, Any]:
    return {"sub": sub, "org": "acme", "roles": ["writer"]}


@pytest.mark.parametrize("user", [u for u in LOOK_ALIKES if u])
def test_every_entry_point_applies_the_same_rule(user: str) -> None:
    with pytest.raises(Unauthorized):
        principal_from_claims(_claims(user), None)
    with pytest.raises(ValidationFailed):
        validate_grantee(user)
    with pytest.raises(ValidationFailed):
        validate_user(user, ["path", "user"])
    with pytest.raises(ValidationFailed):
        parse_erasure({"documents": f"reassign:{user}"}, "alice")
    with pytest.raises(ValidationFailed) as caught:
        parse_search_request({"filter": {"owner": user}})
    assert caught.value.errors and caught.value.errors[0]["loc"] == ["filter", "owner"]


@pytest.mark.parametrize("user", GOOD)
def test_every_entry_point_takes_a_good_id(user: str) -> None:
    assert principal_from_claims(_claims(user), None).sub == user
    assert validate_grantee(user) == user
    assert parse_erasure({"documents": f"reassign:{user}"}, "someone-else") == user
    assert parse_search_request({"filter": {"owner": user}}).filter.owner == user


@BOUNDED
@given(st.text(max_size=300))
def test_an_accepted_id_has_no_look_alike_spelling(user: str) -> None:
    """Whatever is accepted is its own canonical form: NFC, no outer or doubled
    space, nothing invisible; so no two accepted ids differ only in those."""
    if user_id_problem(user) is not None:
        return
    assert 1 <= len(user) <= 256
    assert unicodedata.normalize("NFC", user) == user
    assert user == user.strip() and "  " not in user
    assert not any(unicodedata.category(c)[0] in "CZ" and c != " " for c in user)
    assert "*" not in user and "/" not in user


@BOUNDED
@given(st.text(min_size=1, max_size=20), st.sampled_from([" ", "\t", "\u00a0", "\u200b", "\n"]))
def test_padding_an_id_makes_it_a_look_alike(user: str, pad: str) -> None:
    assert user_id_problem(pad + user) is not None
    assert user_id_problem(user + pad) is not None
