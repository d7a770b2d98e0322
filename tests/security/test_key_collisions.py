"""Keys built from token-controlled parts (org, sub) and ids never collide:
every component is length-prefixed (``domain.keys.join_key``)."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chalicelib.adapters.redis.cache import RedisCache
from chalicelib.adapters.redis.rate_limit import RateLimiter
from chalicelib.domain.content.keys import ContentKey, parse_content_key
from chalicelib.domain.keys import join_key, split_key
from tests.conftest import Invoker, make_token, namespace

names = st.text(min_size=0, max_size=12)
tuples = st.lists(names, min_size=1, max_size=4).map(tuple)


@given(tuples)
def test_join_key_round_trips(parts: tuple[str, ...]) -> None:
    assert split_key(join_key(*parts)) == parts


@given(tuples, tuples)
def test_join_key_is_injective(a: tuple[str, ...], b: tuple[str, ...]) -> None:
    if a != b:
        assert join_key(*a) != join_key(*b)


@given(st.text(min_size=1, max_size=8), st.text(min_size=1, max_size=8),
       st.text(min_size=1, max_size=8), st.text(min_size=1, max_size=8))  # fmt: skip
def test_cache_and_rate_limit_keys_of_different_tuples_differ(
    org1: str, id1: str, org2: str, id2: str
) -> None:
    cache = RedisCache.__new__(RedisCache)
    cache.namespace = namespace("p:")
    if (org1, id1) != (org2, id2):
        keys1 = {cache._doc_key(org1, id1), cache._etag_key(org1, id1)}
        keys2 = {cache._doc_key(org2, id2), cache._etag_key(org2, id2)}
        assert not keys1 & keys2
        assert cache._list_key(org1, id1) != cache._list_key(org2, id2)
    if org1 != org2:
        assert cache._listgen_key(org1) != cache._listgen_key(org2)


@given(st.text(min_size=1, max_size=10), st.from_regex(r"[A-Za-z0-9_-]{1,10}", fullmatch=True))
def test_content_keys_round_trip_for_any_org(org: str, doc_id: str) -> None:
    key = ContentKey(org, doc_id, "01J0000000000000000000000Z")
    assert parse_content_key(key.key) == key


@pytest.mark.integration
def test_an_org_holding_a_colon_shares_no_cache_entry(container: Any) -> None:
    base = f"kc{uuid.uuid4().hex[:6]}"
    # org "x" document "y" once lived at doc:x:y with its validator at doc:x:y:etag,
    # which is what org "x:y" reading document "etag" looked up
    plain, colon = Invoker(make_token(org=base)), Invoker(make_token(org=f"{base}:y"))
    doc = plain("PUT", "/documents/y", {"title": "x's"}).json()
    assert plain("GET", "/documents/y").headers["x-cache"] in ("hit", "miss")
    for headers in ({}, {"If-None-Match": doc["etag"]}):
        r = colon("GET", "/documents/etag", headers=headers)
        assert r.status == 404, r
    mine = colon("PUT", "/documents/etag", {"title": "colon's"}).json()
    assert colon("GET", "/documents/etag").json()["title"] == "colon's"
    assert plain("GET", "/documents/y").json()["title"] == "x's"
    assert mine["etag"] != doc["etag"]


@pytest.mark.integration
def test_rate_limit_buckets_of_colliding_principals_are_apart(container: Any) -> None:
    limiter = RateLimiter(
        container.cache,
        {"reader": (0.001, 1), "writer": (0.001, 1), "admin": (0.001, 1)},
        namespace(f"{container.settings.redis_key_prefix}{uuid.uuid4().hex[:6]}:"),
        lease_s=0.0,
    )
    first = limiter.check("a:b", "c", "reader")
    assert first is not None and first.allowed
    spent = limiter.check("a:b", "c", "reader")
    assert spent is not None and not spent.allowed
    other = limiter.check("a", "b:c", "reader")  # once the same "rl:a:b:c" bucket
    assert other is not None and other.allowed
