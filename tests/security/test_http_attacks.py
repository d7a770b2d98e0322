"""The hostile-input classes again, over real HTTP against the local server
(``python -m chalicelib.cli serve``), black-box: what a client on the wire sees.
The handler-level tests next to this file cover each class in depth."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import jwt
import pytest

from chalicelib.api.http import SECURITY_HEADERS
from tests.conftest import JWT_SECRET, make_token
from tests.e2e.conftest import Client, HttpResponse

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def base(server: str) -> str:
    """The run's shared local server: these attacks need no settings of their own."""
    return server


def _client(base: str, org: str | None = None, **claims: Any) -> Client:
    if not claims:
        return Client(base, make_token(org=org or f"h-{uuid.uuid4().hex[:8]}"))
    now = int(time.time())
    payload = {"sub": "alice", "org": org or "h", "roles": ["writer"], "iss": "docs-local",
               "aud": "docs-api", "iat": now, "exp": now + 600, **claims}  # fmt: skip
    return Client(base, jwt.encode(payload, JWT_SECRET, algorithm="HS256"))


def _problem(r: HttpResponse, status: int) -> dict[str, Any]:
    assert r.status == status, (r.status, r.body[:300])
    assert r.headers["content-type"] == "application/problem+json"
    for name in SECURITY_HEADERS:
        assert name.lower() in r.headers, name
    assert r.headers.get("x-request-id")
    body: dict[str, Any] = r.json()
    assert body["status"] == status and "Traceback" not in body["detail"]
    return body


def test_patch_amplification_over_http(base: str) -> None:
    api = _client(base)
    doc = api.request("POST", "/documents", {"title": "t", "body": {"x": "y" * 5000}}).json()
    ops = [{"op": "copy", "from": "/body", "path": f"/body/k{i}"} for i in range(17)]
    r = api.request("PATCH", f"/documents/{doc['id']}", ops,
                    headers={"Content-Type": "application/json-patch+json", "If-Match": doc["etag"]})  # fmt: skip
    _problem(r, 413)
    assert api.request("GET", f"/documents/{doc['id']}").json()["version"] == 1


@pytest.mark.parametrize("number", [b"NaN", b"-Infinity", b"1e400"])
def test_non_finite_numbers_over_http(base: str, number: bytes) -> None:
    api = _client(base)
    _problem(api.request("POST", "/documents", raw=b'{"title": "n", "body": ' + number + b"}"), 400)
    assert api.request("GET", "/documents").json()["items"] == []


@pytest.mark.parametrize("bad", ["x%0A", "%2E", "%2E%2E"])
def test_bad_ids_over_http(base: str, bad: str) -> None:
    api = _client(base)
    _problem(api.request("PUT", f"/documents/{bad}", {"title": "t"}), 422)
    assert api.request("GET", "/documents").json()["items"] == []


@pytest.mark.parametrize(
    "claims",
    [
        {"exp": str(int(time.time()) + 600)},
        {"org": "ac\x00me"},
        {"sub": "a\x1bb"},
        {"roles": "admin"},
        {"exp": 10**30},
    ],
)
def test_token_policy_over_http(base: str, claims: dict[str, Any]) -> None:
    api = _client(base, **claims)
    for _ in range(2):  # the second use once met a cached token and gave a 500
        _problem(api.request("GET", "/documents"), 401)


def test_soft_delete_bypass_and_unquoted_if_match_over_http(base: str) -> None:
    api = _client(base)
    doc = api.request("PUT", "/documents/d1", {"title": "v1"}).json()
    detail = _problem(api.request("PUT", "/documents/d1", {"title": "x"},
                                  headers={"If-Match": doc["etag"].strip('"')}), 400)["detail"]  # fmt: skip
    assert "quoted" in detail
    assert api.request("DELETE", "/documents/d1").status == 204
    _problem(api.request("PUT", "/documents/d1", {"title": "mine"}), 409)
    _problem(api.request("GET", "/documents/d1/versions/1"), 404)


def test_org_with_a_colon_shares_nothing_over_http(base: str) -> None:
    org = f"c{uuid.uuid4().hex[:6]}"
    plain, colon = _client(base, org), _client(base, f"{org}:y")
    doc = plain.request("PUT", "/documents/y", {"title": "x's"}).json()
    plain.request("GET", "/documents/y")  # fill the cache
    r = colon.request("GET", "/documents/etag", headers={"If-None-Match": doc["etag"]})
    _problem(r, 404)
    assert json.loads(plain.request("GET", "/documents/y").body)["title"] == "x's"


# -- what the request may say before the token is checked ------------------------------
def test_no_token_is_a_401_before_anything_about_the_request(base: str) -> None:
    """A malformed If-Match was answered (400, saying what is wrong with it) before the
    missing token: an anonymous caller must learn nothing but 401."""
    for method in ("DELETE", "PATCH", "PUT"):
        r = Client(base).request(method, "/documents/x", {}, headers={"If-Match": ""})
        _problem(r, 401)


def test_an_etag_holding_a_comma_is_one_etag_over_http(base: str) -> None:
    """RFC 9110 lets an entity tag hold a comma: a stale one is a 412, not a 400."""
    api = _client(base)
    api.request("PUT", "/documents/comma", {"title": "v1"})
    r = api.request("DELETE", "/documents/comma", headers={"If-Match": '"a,b", W/"c"'})
    _problem(r, 412)
