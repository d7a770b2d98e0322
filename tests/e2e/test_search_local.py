"""The local stack's search, black-box: writes reach the in-memory OpenSearch
through the outbox and the LISTEN/NOTIFY-driven sync loop; uploaded content's
text becomes searchable; deletes disappear."""

from __future__ import annotations

import urllib.request
import uuid
from collections.abc import Callable
from typing import Any

import pytest

from tests.conftest import make_token
from tests.e2e.conftest import Client
from tests.polling import poll

pytestmark = pytest.mark.e2e


def _until(check: Callable[[], Any], what: str, timeout: float = 30) -> Any:
    """Wait for eventual consistency (a wait with a generous bound, not a timing assertion)."""
    value = poll(check, timeout_s=timeout)
    if not value:
        raise AssertionError(f"timed out waiting for {what}")
    return value


def _hits(client: Client, q: str) -> list[str]:
    r = client.request("POST", "/search", {"q": q})
    assert r.status == 200, r.body
    return [h["id"] for h in r.json()["hits"]]


def test_writes_become_searchable_and_deletes_disappear(server: str) -> None:
    org = f"e2e-search-{uuid.uuid4().hex[:6]}"
    client = Client(server, make_token(org=org))
    word = f"zebra{uuid.uuid4().hex[:6]}"
    doc = client.request("POST", "/documents", {"title": f"About the {word}"}).json()
    assert _until(lambda: _hits(client, word) == [doc["id"]], "the new document")
    r = client.request("DELETE", f"/documents/{doc['id']}", headers={"If-Match": doc["etag"]})
    assert r.status == 204
    _until(lambda: _hits(client, word) == [], "the deleted document to disappear")
    other = Client(server, make_token(org=org + "-other"))
    assert _hits(other, word) == []
    health = Client(server).request("GET", "/health").json()
    assert health["checks"]["search"] == "ok"


def test_uploaded_content_text_is_searchable(server: str) -> None:
    org = f"e2e-search-{uuid.uuid4().hex[:6]}"
    client = Client(server, make_token(org=org))
    word = f"okapi{uuid.uuid4().hex[:6]}"
    doc = client.request("POST", "/documents", {"title": "plain title"}).json()
    data = f"Field notes.\nThe {word} was seen near the river.\n".encode() * 100
    t = client.request(
        "POST", f"/documents/{doc['id']}/content", {"content_type": "text/plain"}
    ).json()
    put = urllib.request.Request(t["upload_url"], data=data, method="PUT", headers=t["headers"])
    with urllib.request.urlopen(put, timeout=30) as resp:
        assert resp.status == 200
    assert _until(lambda: _hits(client, word) == [doc["id"]], "the content text in search")
    r = client.request("POST", "/search", {"q": word})
    assert "content_text" in r.json()["hits"][0]["highlight"]


def test_changes_feed_over_http(server: str) -> None:
    org = f"e2e-feed-{uuid.uuid4().hex[:6]}"
    client = Client(server, make_token(org=org))
    start = client.request("GET", "/changes?since=now").json()["next"]
    ids = [client.request("POST", "/documents", {"title": f"f{i}"}).json()["id"] for i in range(3)]
    page = client.request("GET", f"/changes?since={start}&feed=longpoll&timeout=5").json()
    got = page["changes"]
    while len(got) < 3:
        page = client.request("GET", f"/changes?since={page['next']}&feed=longpoll&timeout=5")
        page = page.json()
        got += page["changes"]
    assert [c["id"] for c in got] == ids
