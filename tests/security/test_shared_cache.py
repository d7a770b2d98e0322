"""Two stacks on one Redis never share an entry (docs/security.md, "Classes of attack").

Two databases on the machine's PostgreSQL, one Redis, and the *same* configured
key prefix (what two checkouts or two stages given the same settings would
have): every Redis key carries the id each database generated for itself
(migration 0013), so a document, a list page or an idempotent response of
database B is never served by the stack on database A.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from chalicelib import bootstrap
from chalicelib.config import Settings
from tests.conftest import (
    REDIS_URL,
    Invoker,
    Response,
    create_database,
    delete_prefix,
    drop_database,
    make_token,
)

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def stacks(settings: Settings) -> Iterator[dict[str, Any]]:
    """Stacks "a" and "b": their own database each, one Redis, one key prefix."""
    prefix = f"t:{uuid.uuid4().hex[:10]}:shared:"
    urls = {name: create_database() for name in ("a", "b")}
    built = {
        name: bootstrap.build(
            settings.model_copy(update={"database_url": url, "redis_key_prefix": prefix})
        )
        for name, url in urls.items()
    }
    yield built
    bootstrap.set_container(None)
    for name, container in built.items():
        container.close()
        drop_database(urls[name])
    delete_prefix(redis.Redis.from_url(REDIS_URL), prefix)


def _on(stacks: dict[str, Any], name: str) -> dict[str, Any]:
    bootstrap.set_container(stacks[name])
    return stacks


def _call(stacks: dict[str, Any], name: str, method: str, path: str, **kw: Any) -> Response:
    _on(stacks, name)
    return Invoker(make_token(org="shared", sub="alice", roles=("admin",)))(method, path, **kw)


def test_a_document_of_database_b_is_never_served_by_the_stack_on_a(stacks: Any) -> None:
    doc_id = f"only-in-b-{uuid.uuid4().hex[:6]}"
    assert _call(stacks, "b", "PUT", f"/documents/{doc_id}", body={"title": "b's"}).status == 201
    seen = _call(stacks, "b", "GET", f"/documents/{doc_id}")
    assert (seen.status, seen.headers["x-cache"]) == (200, "hit")  # B's entry is in Redis
    for headers in ({}, {"If-None-Match": seen.headers["etag"]}):
        r = _call(stacks, "a", "GET", f"/documents/{doc_id}", headers=headers)
        assert r.status == 404, r
        assert r.headers.get("x-cache") != "hit", r


def test_a_list_page_of_database_b_is_never_served_by_the_stack_on_a(stacks: Any) -> None:
    tag = f"t{uuid.uuid4().hex[:6]}"
    assert (
        _call(stacks, "b", "POST", "/documents", body={"title": "x", "tags": [tag]}).status == 201
    )
    listed = _call(stacks, "b", "GET", f"/documents?tag={tag}")
    assert len(listed.json()["items"]) == 1
    assert _call(stacks, "b", "GET", f"/documents?tag={tag}").headers["x-cache"] == "hit"
    r = _call(stacks, "a", "GET", f"/documents?tag={tag}")
    assert r.status == 200 and r.json()["items"] == [], r
    assert r.headers["x-cache"] == "miss"


def test_an_idempotent_response_of_database_b_is_not_replayed_on_a(stacks: Any) -> None:
    headers = {"Idempotency-Key": f"k-{uuid.uuid4().hex}"}
    body = {"title": "once"}
    in_b = _call(stacks, "b", "POST", "/documents", body=body, headers=headers)
    assert in_b.status == 201 and "idempotent-replayed" not in in_b.headers, in_b
    again = _call(stacks, "b", "POST", "/documents", body=body, headers=headers)
    assert again.headers.get("idempotent-replayed") == "true", again  # B's record is in Redis
    in_a = _call(stacks, "a", "POST", "/documents", body=body, headers=headers)
    assert in_a.status == 201 and "idempotent-replayed" not in in_a.headers, in_a
    # a create that ran on A (its document is in A), not B's stored answer
    assert _call(stacks, "a", "GET", f"/documents/{in_a.json()['id']}").status == 200


def test_each_stack_keys_under_its_own_database(stacks: Any) -> None:
    """The test databases are clones of one migrated template, so they hold the same
    stored id: the database's own OID tells them apart (as it does any copy made
    with CREATE DATABASE … TEMPLATE or a restored dump)."""
    a, b = stacks["a"], stacks["b"]
    assert a.settings.redis_key_prefix == b.settings.redis_key_prefix
    prefix = a.settings.redis_key_prefix
    for container in (a, b):
        assert container.cache.prefix.startswith(f"{prefix}@")
        assert container.realtime_registry.namespace.prefix == container.cache.prefix
    assert a.cache.prefix != b.cache.prefix
