"""No stale read after an acknowledged write, even when Redis misbehaves around it."""

from __future__ import annotations

import json

import pytest

from chalicelib import bootstrap
from chalicelib.adapters.redis.cache import RedisCache
from chalicelib.config import Settings
from chalicelib.domain.cache import CachedDocument
from chalicelib.domain.patching import MERGE_PATCH
from chalicelib.domain.principal import Principal
from devtools.services import free_port

pytestmark = pytest.mark.integration
WRITER = Principal("alice", "cc-org", frozenset({"writer"}))


def test_failed_write_back_leaves_a_fence_so_reads_go_to_postgres(container) -> None:
    docs = container.documents
    doc = docs.create(WRITER, {"title": "v1"})
    assert docs.get(WRITER, doc.id).cache == "hit"

    cache: RedisCache = container.cache
    real_publish = cache.publish
    cache.publish = lambda *a, **k: True  # the post-commit write-back times out
    try:
        v2 = docs.change(WRITER, doc.id, MERGE_PATCH, {"title": "v2"}, if_match=doc.etag)
    finally:
        cache.publish = real_publish
    raw = cache.client.get(cache._doc_key("cc-org", doc.id)).decode()
    assert raw.endswith("\n~"), "the pre-commit fence is still in place"
    # a slow reader that read version 1 before the commit now tries to fill it
    cache.put_if_newer("cc-org", doc.id, CachedDocument(1, doc.etag, "{}"))
    got = docs.get(WRITER, doc.id)
    assert got.version == 2 and json.loads(got.body)["title"] == "v2"
    assert got.cache == "miss"
    assert docs.get(WRITER, doc.id).cache == "hit", "the reader's fill replaced the fence"
    assert v2.version == 2


def test_writer_cut_off_from_redis_records_dirty_and_readers_repair(settings: Settings) -> None:
    good = bootstrap.build(settings)
    cut_off_settings = settings.model_copy(
        update={"redis_url": f"redis://127.0.0.1:{free_port()}/0", "breaker_failure_threshold": 1}
    )
    cut_off = bootstrap.build(cut_off_settings)
    try:
        doc = good.documents.create(WRITER, {"title": "v1"})
        assert good.documents.get(WRITER, doc.id).cache == "hit"  # v1 cached
        # another process, unable to reach Redis, changes the document
        v2 = cut_off.documents.change(
            WRITER, doc.id, MERGE_PATCH, {"title": "v2"}, if_match=doc.etag
        )
        assert cut_off.coherence.queue.pending(10) == [("cc-org", doc.id, 2)]
        # the healthy reader repairs before trusting its cache: never serves v1
        good.cache._next_repair = 0.0  # its once-a-second check is due
        got = good.documents.get(WRITER, doc.id)
        assert got.version == v2.version == 2
        assert good.coherence.queue.pending(10) == []
    finally:
        good.uow.close()
        cut_off.uow.close()


def test_conditional_get_uses_the_etag_key_and_deletes_drop_it(container) -> None:
    docs = container.documents
    doc = docs.create(WRITER, {"title": "x"})
    cache: RedisCache = container.cache
    key = cache._etag_key("cc-org", doc.id)
    assert cache.client.get(key).decode() == f"1\n{doc.etag}"
    assert docs.get(WRITER, doc.id, if_none_match=doc.etag).not_modified
    docs.delete(WRITER, doc.id, if_match=None)
    assert cache.client.get(key) is None
