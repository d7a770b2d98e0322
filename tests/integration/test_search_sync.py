"""Outbox → OpenSearch: convergence, idempotence, faults, reindex, isolation.

Real PostgreSQL (a fresh database per test) and an OpenSearch-compatible
server (OPENSEARCH_URL, or the in-memory one); no mocks of either.
"""

from __future__ import annotations

import random
import threading
import uuid
from typing import Any

import pytest

from chalicelib import bootstrap
from chalicelib.domain.errors import SearchUnavailable
from chalicelib.domain.search_index import (
    SCHEMA_VERSION,
    SearchDocument,
    index_body,
    index_id,
    search_document,
)
from tests.conftest import Invoker, admin_connection, make_token, post_search, sync_search
from tests.polling import poll

pytestmark = pytest.mark.integration


def _org() -> str:
    return f"org-{uuid.uuid4().hex[:8]}"


def _client(org: str, roles: tuple[str, ...] = ("admin",)) -> Invoker:
    return Invoker(make_token(org=org, roles=roles))


def _create(api: Invoker, title: str, **fields: Any) -> dict[str, Any]:
    r = api("POST", "/documents", {"title": title, **fields})
    assert r.status == 201, r
    return r.json()


def _pg_state(c: Any) -> dict[str, tuple[int, dict[str, Any]]]:
    """What the index must hold: every live document's indexed form, by index id."""
    out = {}
    after = None
    while page := c.outbox.documents_page(after, 500):
        for row in page:
            doc = search_document(row, max_chars=c.settings.search_body_max_chars)
            assert doc.source is not None
            out[doc.index_id] = (doc.version, doc.source)
        after = (page[-1]["org"], page[-1]["id"])
    return out


def _pending(c: Any) -> int:
    with admin_connection(c) as conn:
        row = conn.execute("SELECT count(*) AS n FROM outbox WHERE processed_at IS NULL")
        return int(row.fetchone()["n"])


def test_create_change_delete_restore_follow_in_search(search_container) -> None:
    c, org = search_container, _org()
    api = _client(org)
    doc = _create(api, "Quarterly report", body={"text": "revenue grew in the north"})
    sync_search(c)
    hits = post_search(api, q="revenue")["hits"]
    assert [h["id"] for h in hits] == [doc["id"]]
    assert "<em>revenue</em>" in hits[0]["highlight"]["body_text"][0]

    r = api("POST", f"/documents/{doc['id']}/changes",
            {"title": "Annual report"},
            headers={"If-Match": doc["etag"], "Content-Type": "application/merge-patch+json"})  # fmt: skip
    assert r.status == 200, r
    sync_search(c)
    assert post_search(api, q="annual")["hits"][0]["version"] == 2
    assert post_search(api, q="quarterly")["total"] == 0

    r = api("DELETE", f"/documents/{doc['id']}", headers={"If-Match": r.json()["etag"]})
    assert r.status == 204
    sync_search(c)
    assert post_search(api, q="annual")["total"] == 0

    assert api("POST", f"/documents/{doc['id']}/restore").status == 200
    sync_search(c)
    assert [h["version"] for h in post_search(api, q="annual")["hits"]] == [4]
    assert _pending(c) == 0
    assert c.search_index.all_documents() == _pg_state(c)


def test_replays_and_stale_deliveries_in_any_order_leave_the_same_index(search_container) -> None:
    c, org = search_container, _org()
    api = _client(org)
    docs = [_create(api, f"doc {i}", tags=["t"]) for i in range(6)]
    for doc in docs[:4]:  # a few versions each, one deleted
        etag = doc["etag"]
        for n in range(3):
            r = api("PUT", f"/documents/{doc['id']}", {"title": f"doc v{n}", "body": n},
                    headers={"If-Match": etag})  # fmt: skip
            etag = r.json()["etag"]
    assert api("DELETE", f"/documents/{docs[0]['id']}", headers={"If-Match": etag}).status in (
        204,
        412,
    )
    sync_search(c)
    expected = c.search_index.all_documents()
    assert expected == _pg_state(c)

    # every historical state of every document, shuffled: external versions refuse them all
    with admin_connection(c) as conn:
        versions = conn.execute(
            "SELECT v.org, v.id, v.version, v.title, v.body, v.tags, v.deleted, d.owner, "
            "d.created_at, v.created_at AS updated_at, NULL AS content FROM document_versions v "
            "JOIN documents d USING (org, id)"
        ).fetchall()
    stale = []
    for v in versions:
        row = {**v, "deleted_at": v["updated_at"] if v["deleted"] else None, "metadata": {}}
        stale.append(search_document(row, max_chars=1000))
    random.Random(7).shuffle(stale)
    results = c.search_index.write(stale, [c.search_index.alias])
    assert all(r.ok for r in results)

    # and the whole outbox replayed twice
    for _ in range(2):
        with admin_connection(c) as conn:
            conn.execute("UPDATE outbox SET processed_at = NULL, next_attempt_at = now()")
        report = c.search_sync.drain()
        assert report.rows > 0
    c.search_index.refresh()
    assert c.search_index.all_documents() == expected


def test_a_consumer_that_dies_mid_batch_leaves_its_rows_for_the_next(search_container) -> None:
    c, org = search_container, _org()
    api = _client(org)
    for i in range(10):
        _create(api, f"crash {i}")
    index = c.search_index
    real_write = index.write

    def write_half_then_die(docs: list[SearchDocument], indexes: list[str]) -> Any:
        real_write(list(docs)[:5], indexes)
        raise SystemExit("killed")

    index.write = write_half_then_die
    with pytest.raises(SystemExit):
        c.search_sync.run_once()
    index.write = real_write
    assert _pending(c) == 10  # nothing was marked: the claim rolled back
    with admin_connection(c) as conn:
        assert conn.execute("SELECT max(attempts) AS a FROM outbox").fetchone()["a"] == 0
    sync_search(c)
    assert _pending(c) == 0
    assert index.all_documents() == _pg_state(c)


def test_a_poison_document_is_dead_lettered_and_the_rest_go_on(search_container) -> None:
    c, org = search_container, _org()
    index = c.search_index
    # the live index disagrees with our documents about one field: a mapping conflict
    name = index.next_index_name()
    index.client.indices.create(
        index=name,
        body={"mappings": {"_meta": {"schema": SCHEMA_VERSION},
                           "properties": {"tags": {"type": "long"}, "org": {"type": "keyword"},
                                          "id": {"type": "keyword"}}}},
    )  # fmt: skip
    index.swap_alias(None, name)
    api = _client(org)
    poison = _create(api, "poison", tags=["not-a-number"])
    fine = [_create(api, f"fine {i}") for i in range(3)]
    for _ in range(c.settings.search_max_attempts):
        c.search_sync.drain()
    assert _pending(c) == 0
    with admin_connection(c) as conn:
        dead = conn.execute("SELECT doc_id, attempts, reason FROM search_dead_letters").fetchall()
    assert [d["doc_id"] for d in dead] == [poison["id"]]
    assert dead[0]["attempts"] == c.settings.search_max_attempts
    assert "tags" in dead[0]["reason"] and "exception" in dead[0]["reason"]
    assert c.search_sync.stats()["dead_letters"] == 1
    index.refresh()
    held = index.all_documents()
    assert {index_id(org, d["id"]) for d in fine} <= set(held)
    assert index_id(org, poison["id"]) not in held

    # after the cause is fixed (a reindex with the right mapping), requeue them
    c.search_sync.reindex(drop_old_now=True)
    assert c.outbox.requeue_dead_letters() == 1
    sync_search(c)
    assert index.all_documents() == _pg_state(c)


def test_two_consumers_at_once_converge_without_double_work_corruption(
    search_container, settings
) -> None:
    c, org = search_container, _org()
    other = bootstrap.build(c.settings)  # a second consumer: its own pool and client
    api = _client(org)
    docs = [_create(api, f"pair {i}") for i in range(20)]
    stop = threading.Event()
    errors: list[BaseException] = []

    def consume(container: Any) -> None:
        try:
            while not stop.is_set():
                try:
                    container.search_sync.drain()
                except SearchUnavailable:  # the other one is building the first index
                    stop.wait(0.05)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=consume, args=(x,)) for x in (c, other)]
    for t in threads:
        t.start()
    try:
        for round_ in range(5):
            for doc in docs:
                r = api("GET", f"/documents/{doc['id']}")
                api("PUT", f"/documents/{doc['id']}", {"title": f"pair r{round_}"},
                    headers={"If-Match": r.headers["etag"]})  # fmt: skip
    finally:
        stop.set()
        for t in threads:
            t.join()
        other.close()
    assert not errors
    sync_search(c)
    assert _pending(c) == 0
    held = c.search_index.all_documents()
    assert held == _pg_state(c)
    assert {v for v, _ in held.values()} == {6}


def test_reindex_under_concurrent_writes_equals_postgres(search_container) -> None:
    c, org = search_container, _org()
    api = _client(org)
    docs = [_create(api, f"re {i}") for i in range(40)]
    sync_search(c)
    first = c.search_index.live_index()
    stop = threading.Event()
    errors: list[BaseException] = []

    def write() -> None:
        rng = random.Random(1)
        try:
            while not stop.is_set():
                doc = rng.choice(docs)
                r = api("GET", f"/documents/{doc['id']}")
                if r.status != 200:
                    continue
                if rng.random() < 0.1:
                    api(
                        "DELETE", f"/documents/{doc['id']}", headers={"If-Match": r.headers["etag"]}
                    )
                else:
                    api("PUT", f"/documents/{doc['id']}", {"title": f"re {rng.random()}"},
                        headers={"If-Match": r.headers["etag"]})  # fmt: skip
        except BaseException as exc:
            errors.append(exc)

    def consume() -> None:
        consumer = bootstrap.build(c.settings)
        try:
            while not stop.is_set():
                consumer.search_sync.drain()
        except BaseException as exc:
            errors.append(exc)
        finally:
            consumer.close()

    def max_seq() -> int:
        with admin_connection(c) as conn:
            return int(conn.execute("SELECT max(seq) AS s FROM outbox").fetchone()["s"])

    threads = [threading.Thread(target=write), threading.Thread(target=consume)]
    for t in threads:
        t.start()
    try:
        # the writers are going before the reindex starts
        assert poll(max_seq, lambda seq: seq >= 45, timeout_s=60, interval_s=0.01) >= 45
        before = max_seq()
        report = c.search_sync.reindex(batch=7, drop_old_now=True)
        during = max_seq() - before
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert not errors
    assert during > 0, "no write happened while the reindex ran"
    assert report.previous == first and report.index != first
    assert c.search_index.live_index() == report.index
    assert first not in c.search_index.versioned_indexes()  # dropped (no grace here)
    sync_search(c)
    assert c.search_index.all_documents() == _pg_state(c)


def test_search_never_returns_another_orgs_documents(search_container) -> None:
    c = search_container
    a, b = _org(), _org()
    api_a, api_b = _client(a), _client(b)
    for i in range(3):
        api_a("PUT", f"/documents/shared-{i}", {"title": f"shared secret {i}", "tags": ["x"]})
        api_b("PUT", f"/documents/shared-{i}", {"title": f"shared secret {i}", "tags": ["x"]})
    _create(api_b, "only in b: secret")
    sync_search(c)
    for api, org, n in ((api_a, a, 3), (api_b, b, 4)):
        result = post_search(api, q="secret")
        assert result["total"] == n
        for query in ({"q": "secret"}, {}, {"filter": {"tags": ["x"]}}, {"q": "only"}):
            for hit in post_search(api, **query)["hits"]:
                held = c.search_index.get(index_id(org, hit["id"]))
                assert held is not None and held["_source"]["org"] == org
    assert post_search(api_a, q="only")["total"] == 0


def test_opensearch_down_writes_succeed_and_the_index_converges_after(
    search_container, tmp_path
) -> None:
    from osmem_server import OsmemServer

    from devtools.services import free_port

    c = search_container
    port = free_port()
    server = OsmemServer.start(japanese=False, addr=f"127.0.0.1:{port}")
    settings = c.settings.model_copy(update={"opensearch_url": server.url})
    own = bootstrap.build(settings)
    bootstrap.set_container(own)
    try:
        api = _client(_org())
        for i in range(5):
            _create(api, f"before {i}")
        sync_search(own)
        server.close()  # OpenSearch goes away
        written = [_create(api, f"during {i}") for i in range(10)]  # writes never wait for it
        assert all(d["version"] == 1 for d in written)
        with pytest.raises(SearchUnavailable):
            own.search_sync.run_once()
        r = api("POST", "/search", {"q": "during"})
        assert r.status == 503 and r.headers["retry-after"]
        assert _pending(own) == 10
        health = api("GET", "/health", token=False).json()
        assert health["checks"]["postgres"] == "ok"

        # it comes back empty (in-memory): the consumer rebuilds the alias from PostgreSQL
        server = OsmemServer.start(japanese=False, addr=f"127.0.0.1:{port}")
        sync_search(own)
        assert _pending(own) == 0
        assert own.search_index.all_documents() == _pg_state(own)
        assert post_search(api, q="during")["total"] == 10
    finally:
        server.close()
        bootstrap.set_container(c)
        own.close()


def test_an_interrupted_reindex_leaves_nothing_consumers_keep_feeding(search_container) -> None:
    c, org = search_container, _org()
    api = _client(org)
    _create(api, "kept")
    sync_search(c)
    # a reindex killed mid-way: its index exists and is still registered as building
    debris = c.search_index.next_index_name()
    c.search_index.create_index(debris)
    c.outbox.register_building(debris)
    half_done = SearchDocument(org, "half-done", 1, {"org": org, "id": "half-done", "title": "x"})
    assert all(r.ok for r in c.search_index.write([half_done], [debris]))
    assert c.outbox.building_indexes() == [debris]
    report = c.search_sync.reindex(drop_old_now=True)
    assert c.outbox.building_indexes() == []
    # the debris was dropped (its name may be reused by the new index, but not its content)
    assert c.search_index.versioned_indexes() == [report.index]
    assert c.search_index.live_index() == report.index
    assert index_id(org, "half-done") not in c.search_index.all_documents()
    sync_search(c)
    assert c.search_index.all_documents() == _pg_state(c)


def test_transient_item_refusals_back_off_without_counting_towards_dead_letters(
    search_container,
) -> None:
    from chalicelib.domain.search_index import ItemResult

    c, org = search_container, _org()
    api = _client(org)
    busy = _create(api, "busy")
    sync_search(c)
    r = api(
        "PUT", f"/documents/{busy['id']}", {"title": "busy 2"}, headers={"If-Match": busy["etag"]}
    )
    assert r.status == 200
    index = c.search_index
    real_write = index.write

    def too_many_requests(docs: list[SearchDocument], indexes: list[str]) -> Any:
        return [ItemResult(i, d.index_id, ok=False, retryable=True, reason="429: busy")
                for d in docs for i in indexes]  # fmt: skip

    index.write = too_many_requests
    try:
        for _ in range(c.settings.search_max_attempts + 2):
            with admin_connection(c) as conn:
                conn.execute("UPDATE outbox SET next_attempt_at = now()")
            report = c.search_sync.run_once()
            assert report.retried == 1 and report.dead_lettered == 0
        with admin_connection(c) as conn:
            conn.execute("UPDATE outbox SET next_attempt_at = now()")
        # only back-offs: drain stops after one batch instead of spinning on the busy item
        assert c.search_sync.drain().batches == 1
    finally:
        index.write = real_write
    with admin_connection(c) as conn:
        row = conn.execute(
            "SELECT attempts, last_error FROM outbox WHERE processed_at IS NULL"
        ).fetchone()
    assert row["attempts"] == 0 and "429" in row["last_error"]
    with admin_connection(c) as conn:
        conn.execute("UPDATE outbox SET next_attempt_at = now()")
    sync_search(c)
    assert c.search_index.all_documents() == _pg_state(c)


def test_an_index_of_an_older_schema_is_not_written_until_a_reindex(search_container) -> None:
    """After a deploy that changes the mapping or the id encoding, the sync must
    not add new-style entries next to old ones (a document twice, a delete that
    misses): the rows wait, and a reindex builds an index of the current schema."""
    c, org = search_container, _org()
    index = c.search_index
    api = _client(org)
    doc = _create(api, "written before the upgrade")
    old = index_body(1, 0)
    del old["mappings"]["_meta"]  # schema 1: no _meta, BM25, ids "{org}:{id}"
    for field in ("title", "body_text", "content_text"):
        del old["mappings"]["properties"][field]["similarity"]
    name = index.next_index_name()
    index.client.indices.create(index=name, body=old)
    index.swap_alias(None, name)
    index.client.index(index=name, id=f"{org}:{doc['id']}", body={"org": org, "id": doc["id"]},
                       refresh=True)  # fmt: skip
    assert index.schema_version(name) == 1

    with pytest.raises(SearchUnavailable):
        c.search_sync.run_once()
    assert _pending(c) == 1
    assert set(index.all_documents()) == {f"{org}:{doc['id']}"}

    report = c.search_sync.reindex(drop_old_now=True)
    assert report.previous == name and index.schema_version(report.index) == SCHEMA_VERSION
    sync_search(c)
    assert _pending(c) == 0
    assert index.all_documents() == _pg_state(c)
    assert set(index.all_documents()) == {index_id(org, doc["id"])}
