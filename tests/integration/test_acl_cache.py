"""The cache entry of a private document: its ACL travels with it (one GET), it has
no ``etag:`` shortcut, and set-if-newer and fences treat it like any entry."""

from __future__ import annotations

import uuid

import pytest

from chalicelib.adapters.redis.cache import RedisCache
from chalicelib.config import Settings
from chalicelib.domain.access import Acl
from chalicelib.domain.cache import CachedDocument
from tests.conftest import namespace

pytestmark = pytest.mark.integration


def test_a_private_entry_carries_its_acl_and_no_validator(settings: Settings) -> None:
    cache, org, doc = (
        RedisCache(settings, namespace(settings.redis_key_prefix)),
        f"o-{uuid.uuid4().hex[:8]}",
        "d",
    )
    acl = Acl("private", "olga\nx", {"gary": "reader"}).encode()
    body = '{"id":"d","title":"line\\nbreak"}'
    cache.put_if_newer(org, doc, CachedDocument(1, '"e1"', body, acl))
    assert cache.get(org, doc) == CachedDocument(1, '"e1"', body, acl)
    assert cache.get_etag(org, doc) is None  # no 304 without the ACL check
    calls = []
    real_get = cache.client.get
    cache.client.get = lambda key: calls.append(key) or real_get(key)  # type: ignore[method-assign]
    cache.get(org, doc)
    assert len(calls) == 1  # one GET holds document and ACL
    cache.client.get = real_get  # type: ignore[method-assign]
    # made open to the org: the newer entry replaces it, with a validator again
    assert cache.publish(org, doc, CachedDocument(2, '"e2"', body))
    assert cache.get(org, doc) == CachedDocument(2, '"e2"', body, "")
    assert cache.get_etag(org, doc) == (2, '"e2"')
    # ... and a fill of the older, private version is refused
    cache.put_if_newer(org, doc, CachedDocument(1, '"e1"', body, acl))
    assert cache.get(org, doc) == CachedDocument(2, '"e2"', body, "")
    # a fence, then the private version 3: the etag line goes with the fence
    assert cache.fence(org, doc, 3)
    assert cache.get(org, doc) is None and cache.get_etag(org, doc) is None
    assert cache.publish(org, doc, CachedDocument(3, '"e3"', body, acl))
    assert cache.get(org, doc) == CachedDocument(3, '"e3"', body, acl)
    assert cache.get_etag(org, doc) is None
