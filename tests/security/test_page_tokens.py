"""Page tokens are sealed and bound to their org, endpoint and query (docs/api.md).

Every paginated endpoint (``GET /documents``, ``GET /documents/{id}/versions``,
``GET /audit``; ``POST /search`` in tests/unit/test_search_domain.py) hands out
tokens a client cannot read, and takes back only its own: a token of another
org, another endpoint, another document or other filters is a 400
problem+json, never a silent first page; a changed or forged token is a 400.
Real PostgreSQL and Redis through the app's handler.
"""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from typing import Any
from urllib.parse import quote

import pytest

from tests.conftest import Invoker, Response, make_token

pytestmark = pytest.mark.integration

NOT_THIS_QUERY = "page_token does not belong to this query"
NOT_VALID = "page_token is not valid; use the next_page_token of a response."


def _org() -> str:
    return f"pt-{uuid.uuid4().hex[:8]}"


def _admin(org: str) -> Invoker:
    return Invoker(make_token(org=org, sub="root", roles=("admin",)))


def _token(api: Invoker, path: str) -> str:
    r = api("GET", path)
    assert r.status == 200, r
    token = r.json()["next_page_token"]
    assert isinstance(token, str) and token, r
    return token


def _refused(api: Invoker, path: str, token: str) -> Response:
    sep = "&" if "?" in path else "?"
    r = api("GET", f"{path}{sep}page_token={quote(token, safe='')}")
    assert r.status == 400, (path, r)
    assert r.headers["content-type"] == "application/problem+json", r
    return r


def _world(org: str) -> dict[str, Any]:
    """Two documents of ``org`` with the same ids as in any other org, three versions
    each, tagged ``t``: enough rows for a second page everywhere with ``limit=1``."""
    api = _admin(org)
    for doc_id in ("doc-a", "doc-b"):
        r = api("PUT", f"/documents/{doc_id}", {"title": "v1", "tags": ["t"]})
        assert r.status == 201, r
        for n in (2, 3):
            r = api("PUT", f"/documents/{doc_id}", {"title": f"v{n}", "tags": ["t"]},
                    headers={"If-Match": r.headers["etag"]})  # fmt: skip
            assert r.status == 200, r
    return {
        "list": _token(api, "/documents?limit=1&tag=t"),
        "versions-a": _token(api, "/documents/doc-a/versions?limit=1"),
        "versions-b": _token(api, "/documents/doc-b/versions?limit=1"),
        "audit": _token(api, "/audit?limit=1&document=doc-a"),
    }


ENDPOINTS = {
    "list": "/documents?limit=1&tag=t",
    "versions-a": "/documents/doc-a/versions?limit=1",
    "versions-b": "/documents/doc-b/versions?limit=1",
    "audit": "/audit?limit=1&document=doc-a",
}


def _reads_as_json(token: str) -> bool:
    """Whether any dot-separated part of ``token`` is base64 of JSON (as an
    HMAC-signed ``base64(json).base64(mac)`` token was)."""
    for part in token.split("."):
        try:
            raw = base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))
            json.loads(raw)
        except (binascii.Error, ValueError):
            continue
        return True
    return False


def test_tokens_continue_their_own_query(container: Any) -> None:
    org = _org()
    tokens = _world(org)
    api = _admin(org)
    for name, path in ENDPOINTS.items():
        r = api("GET", f"{path}&page_token={quote(tokens[name], safe='')}")
        assert r.status == 200, (name, r)
        assert r.json()["items"], name


def test_tokens_cannot_be_read(container: Any) -> None:
    org = _org()
    tokens = _world(org)
    api = _admin(org)
    for name, token in tokens.items():
        assert not _reads_as_json(token), (name, token)
        if name != "list":  # (a list page is cached for 30 s, its token with it)
            # sealed with a fresh nonce: the same position is a different string each time
            assert _token(api, ENDPOINTS[name]) != token, name


@pytest.mark.parametrize("issued", sorted(ENDPOINTS))
@pytest.mark.parametrize("used", sorted(ENDPOINTS))
def test_a_token_works_only_on_its_own_endpoint(container: Any, issued: str, used: str) -> None:
    """A versions token on /audit, a list token on versions, doc A's on doc B…"""
    if issued == used:
        return
    org = _org()
    tokens = _world(org)
    r = _refused(_admin(org), ENDPOINTS[used], tokens[issued])
    assert NOT_THIS_QUERY in r.json()["detail"], r


@pytest.mark.parametrize("name", sorted(ENDPOINTS))
def test_a_token_works_only_in_its_own_org(container: Any, name: str) -> None:
    mine, other = _org(), _org()
    tokens = _world(mine)
    _world(other)  # the same ids and shapes there
    r = _refused(_admin(other), ENDPOINTS[name], tokens[name])
    assert NOT_THIS_QUERY in r.json()["detail"], r


@pytest.mark.parametrize(
    ("name", "changed"),
    [
        ("list", "/documents?limit=1&tag=u"),
        ("list", "/documents?limit=1"),
        ("audit", "/audit?limit=1&document=doc-b"),
        ("audit", "/audit?limit=1"),
        ("audit", "/audit?limit=1&document=doc-a&user=root"),
        ("audit", "/audit?limit=1&document=doc-a&since=2020-01-01T00:00:00Z"),
    ],
)
def test_a_token_works_only_with_its_own_filters(container: Any, name: str, changed: str) -> None:
    org = _org()
    tokens = _world(org)
    r = _refused(_admin(org), changed, tokens[name])
    assert NOT_THIS_QUERY in r.json()["detail"], r


def test_the_page_size_may_change_between_pages(container: Any) -> None:
    org = _org()
    tokens = _world(org)
    r = _admin(org)("GET", f"/audit?limit=5&document=doc-a&page_token={tokens['audit']}")
    assert r.status == 200, r


@pytest.mark.parametrize("name", sorted(ENDPOINTS))
def test_changed_or_forged_tokens_are_refused(container: Any, name: str) -> None:
    org = _org()
    token = _world(org)[name]
    api = _admin(org)
    i = len(token) // 2
    flipped = token[:i] + ("A" if token[i] != "A" else "B") + token[i + 1 :]
    forged = base64.urlsafe_b64encode(b'{"s":1,"v":1}').rstrip(b"=").decode()
    for bad in (flipped, token[:-3], forged, forged + "." + token, "x"):
        r = _refused(api, ENDPOINTS[name], bad)
        assert r.json()["detail"] == NOT_VALID, (bad, r)
