"""POST /documents:batch — per-item results, and its own connection budget (bulkhead)."""

from __future__ import annotations

import threading

import pytest

from chalicelib.domain.principal import Principal

pytestmark = pytest.mark.integration


def test_each_item_succeeds_or_fails_on_its_own(invoke) -> None:
    r = invoke(
        "POST",
        "/documents:batch",
        {"documents": [{"title": "one"}, {"title": ""}, {"title": "three", "tags": ["x"]}]},
    )
    assert r.status == 207
    results = r.json()["results"]
    assert [x["status"] for x in results] == [201, 422, 201]
    assert results[1]["error"]["errors"]
    for item in (results[0], results[2]):
        got = invoke("GET", f"/documents/{item['id']}")
        assert got.status == 200 and got.headers["etag"] == item["etag"]


@pytest.mark.parametrize(
    "body", [{"documents": []}, {"documents": [{"title": "x"}] * 101}, {"documents": "x"}, {}]
)
def test_batch_limits(invoke, body) -> None:
    r = invoke("POST", "/documents:batch", body)
    assert r.status == 422 and r.headers["content-type"] == "application/problem+json"


def test_batch_writes_cannot_starve_single_reads(container) -> None:
    """Hold every bulk connection, then read: the read uses its own pool."""
    doc = container.documents.create(
        Principal("a", "bh-org", frozenset({"writer"})), {"title": "r"}
    )
    bulk = container.bulk_documents
    size = container.settings.db_bulk_pool_max
    all_held = threading.Barrier(size + 1)
    release = threading.Event()

    def hold() -> None:
        with bulk.uow.pool.connection():
            all_held.wait()
            release.wait(30)

    holders = [threading.Thread(target=hold) for _ in range(size)]
    for t in holders:
        t.start()
    try:
        all_held.wait()  # every bulk connection is now checked out
        bulk_pool_stats = bulk.uow.pool.get_stats()
        container.cache.client.delete(container.cache._doc_key("bh-org", doc.id))
        got = container.documents.get(Principal("a", "bh-org", frozenset({"reader"})), doc.id)
        assert got.cache == "miss" and got.version == 1, "the read went to PostgreSQL and succeeded"
        assert bulk.uow is not container.uow
        assert bulk_pool_stats["pool_max"] == size
        assert bulk_pool_stats.get("pool_available", 0) == 0
    finally:
        release.set()
        for t in holders:
            t.join()
