"""Look-alike user ids (docs/security.md, "Look-alike user ids"): one rule
(domain/user_id.py) at every entry of a user id, through the Lambda handler:
a grant's path, the erasure's path and ``reassign:`` target, the audit filter,
the search filter ``owner`` (422 problem+json with ``errors``), and a token's
``sub`` (401).  Real PostgreSQL and Redis (tests/conftest.py)."""

from __future__ import annotations

import uuid
from typing import Any
from urllib.parse import quote

import pytest

from tests.conftest import Invoker, make_token

pytestmark = pytest.mark.integration

LOOK_ALIKES = [" bob", "bob ", " ", "*", "/", "bo/b", "bob  x", "bo\u200bb", "bob\u00a0"]


def _refused(r: Any, loc: list[str]) -> None:
    assert r.status == 422, r
    assert r.headers["content-type"] == "application/problem+json"
    errors = r.json()["errors"]
    assert errors and errors[0]["loc"] == loc, errors


@pytest.fixture
def org(container: Any) -> dict[str, Invoker]:
    name = f"org-{uuid.uuid4().hex[:8]}"
    return {
        "owner": Invoker(make_token(org=name, sub="olga", roles=("writer",))),
        "admin": Invoker(make_token(org=name, sub="ada", roles=("admin",))),
    }


@pytest.mark.parametrize("user", LOOK_ALIKES)
def test_a_look_alike_grantee_is_refused(org: dict[str, Invoker], user: str) -> None:
    r = org["owner"]("POST", "/documents", {"title": "t", "visibility": "private"})
    doc_id = r.json()["id"]
    path = f"/documents/{doc_id}/grants/{quote(user, safe='')}"
    _refused(org["owner"]("PUT", path, {"role": "reader"}), ["path", "user"])
    _refused(org["owner"]("DELETE", path), ["path", "user"])
    assert org["owner"]("GET", f"/documents/{doc_id}/grants").json()["grants"] == []
    # the same id, written as the rule wants it, is a grant like any other
    r = org["owner"]("PUT", f"/documents/{doc_id}/grants/bob", {"role": "reader"})
    assert r.status == 200, r


@pytest.mark.parametrize("user", LOOK_ALIKES)
def test_erasure_and_the_audit_filter_take_the_same_rule(
    org: dict[str, Invoker], user: str
) -> None:
    admin = org["admin"]
    r = admin("POST", f"/users/{quote(user, safe='')}/erasure", {"documents": "delete"})
    _refused(r, ["path", "user"])
    r = admin("POST", "/users/olga/erasure", {"documents": f"reassign:{user}"})
    _refused(r, ["body", "documents"])
    _refused(admin("GET", f"/audit?user={quote(user, safe='')}"), ["query", "user"])
    _refused(admin("POST", "/search", {"filter": {"owner": user}}), ["filter", "owner"])
    _refused(admin("GET", f"/users/{quote(user, safe='')}/consents"), ["path", "user"])


@pytest.mark.parametrize("user", LOOK_ALIKES)
def test_a_token_whose_sub_is_a_look_alike_is_a_401(container: Any, user: str) -> None:
    r = Invoker(make_token(sub=user))("GET", "/documents")
    assert r.status == 401, r
    assert r.headers["content-type"] == "application/problem+json"
    assert "sub" in r.json()["detail"]
