"""The use cases against in-memory fakes of the ports."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from chalicelib.domain.cache import CachedDocument
from chalicelib.domain.errors import (
    Conflict,
    Forbidden,
    Gone,
    NotFound,
    PreconditionFailed,
    PreconditionRequired,
    ValidationFailed,
)
from chalicelib.domain.patching import JSON_PATCH, MERGE_PATCH
from chalicelib.domain.principal import Principal
from chalicelib.service_layer.cache_coherence import CacheCoherence
from chalicelib.service_layer.documents import DocumentService
from tests.unit.fakes import FakeCache, FakeCacheRepairQueue, FakeUnitOfWork, coherence

WRITER = Principal("alice", "acme", frozenset({"writer"}))
READER = Principal("rita", "acme", frozenset({"reader"}))
ADMIN = Principal("ada", "acme", frozenset({"admin"}))
OTHER_ORG = Principal("eve", "evil", frozenset({"admin"}))


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 11, 1, tzinfo=UTC)

    def __call__(self) -> datetime:
        self.now += timedelta(milliseconds=1)
        return self.now


@pytest.fixture
def parts() -> tuple[DocumentService, FakeUnitOfWork, FakeCache, Clock]:
    uow, cache, clock = FakeUnitOfWork(), FakeCache(), Clock()
    service = DocumentService(uow, coherence(uow, cache), page_secret="s", clock=clock)
    return service, uow, cache, clock


def test_create_writes_version_outbox_and_cache(parts) -> None:
    service, uow, cache, _ = parts
    doc = service.create(WRITER, {"title": "Plan", "tags": ["q3"]})
    assert doc.version == 1 and doc.owner == "alice" and doc.org == "acme"
    assert [(r.org, r.doc_id, r.version) for r in uow.outbox] == [("acme", doc.id, 1)]
    assert uow.versions[0][2].action == "create"
    assert cache.get("acme", doc.id).version == 1


def test_reader_cannot_write_and_nobody_crosses_orgs(parts) -> None:
    service, *_ = parts
    with pytest.raises(Forbidden):
        service.create(READER, {"title": "x"})
    doc = service.create(WRITER, {"title": "x"})
    with pytest.raises(NotFound):
        service.get(OTHER_ORG, doc.id)
    with pytest.raises(NotFound):
        service.change(OTHER_ORG, doc.id, MERGE_PATCH, {"title": "pwn"}, if_match="*")
    with pytest.raises(NotFound):
        service.delete(OTHER_ORG, doc.id, if_match=None)


def test_get_miss_then_hit_and_not_modified(parts) -> None:
    service, _, cache, _ = parts
    doc = service.create(WRITER, {"title": "x"})
    cache.docs.clear()
    first = service.get(READER, doc.id)
    second = service.get(READER, doc.id)
    assert (first.cache, second.cache) == ("miss", "hit")
    assert json.loads(second.body)["version"] == 1
    assert service.get(READER, doc.id, if_none_match=doc.etag).not_modified


def test_change_requires_if_match_and_bumps_version(parts) -> None:
    service, uow, _, _ = parts
    doc = service.create(WRITER, {"title": "x", "body": {"n": 1}})
    with pytest.raises(PreconditionRequired):
        service.change(WRITER, doc.id, JSON_PATCH, [], if_match=None)
    with pytest.raises(PreconditionFailed) as stale:
        service.change(WRITER, doc.id, JSON_PATCH, [], if_match='"stale"')
    assert stale.value.headers["ETag"] == doc.etag
    changed = service.change(
        WRITER,
        doc.id,
        JSON_PATCH,
        [{"op": "replace", "path": "/body/n", "value": 2}],
        if_match=doc.etag,
    )
    assert changed.version == 2 and changed.body == {"n": 2}
    assert len(uow.outbox) == 2


def test_failed_patch_changes_nothing(parts) -> None:
    service, uow, _, _ = parts
    doc = service.create(WRITER, {"title": "x"})
    with pytest.raises(Conflict):
        service.change(
            WRITER, doc.id, JSON_PATCH,
            [{"op": "replace", "path": "/title", "value": "y"}, {"op": "test", "path": "/title", "value": "no"}],
            if_match=doc.etag,
        )  # fmt: skip
    with pytest.raises(ValidationFailed):
        service.change(WRITER, doc.id, MERGE_PATCH, {"owner": "me"}, if_match=doc.etag)
    assert uow.docs[("acme", doc.id)].version == 1 and len(uow.outbox) == 1


def test_concurrent_writer_loses_with_412(parts) -> None:
    service, uow, _, _ = parts
    doc = service.create(WRITER, {"title": "x"})
    # another writer commits version 2 behind our back
    service.change(WRITER, doc.id, MERGE_PATCH, {"title": "first"}, if_match=doc.etag)
    with pytest.raises(PreconditionFailed):
        service.change(WRITER, doc.id, MERGE_PATCH, {"title": "second"}, if_match=doc.etag)
    assert uow.docs[("acme", doc.id)].title == "first"


def test_put_create_replace_and_create_only(parts) -> None:
    service, *_ = parts
    doc, created = service.put(WRITER, "my-doc", {"title": "a"}, if_match=None, if_none_match="*")
    assert created and doc.version == 1
    with pytest.raises(PreconditionFailed):
        service.put(WRITER, "my-doc", {"title": "b"}, if_match=None, if_none_match="*")
    with pytest.raises(PreconditionRequired):
        service.put(WRITER, "my-doc", {"title": "b"}, if_match=None, if_none_match=None)
    replaced, created = service.put(
        WRITER, "my-doc", {"title": "b"}, if_match=doc.etag, if_none_match=None
    )
    assert not created and replaced.version == 2 and replaced.title == "b"
    with pytest.raises(PreconditionFailed):
        service.put(WRITER, "ghost", {"title": "b"}, if_match='"x"', if_none_match=None)


def test_delete_is_soft_and_restorable_by_admin_within_retention(parts) -> None:
    service, _, cache, clock = parts
    doc = service.create(WRITER, {"title": "x"})
    service.delete(WRITER, doc.id, if_match=doc.etag)
    assert cache.get("acme", doc.id).body is None  # a versioned tombstone, not a missing key
    with pytest.raises(NotFound):
        service.get(READER, doc.id)
    with pytest.raises(Forbidden):
        service.restore(WRITER, doc.id)
    restored = service.restore(ADMIN, doc.id)
    assert restored.version == 3 and service.get(READER, doc.id).version == 3
    service.delete(WRITER, doc.id, if_match=None)
    clock.now += timedelta(days=31)
    with pytest.raises(Gone):
        service.restore(ADMIN, doc.id)
    with pytest.raises(Conflict):
        service.restore(ADMIN, service.create(WRITER, {"title": "live"}).id)


def test_put_cannot_resurrect_a_deleted_document_within_the_restore_window(parts) -> None:
    service, uow, _, _ = parts
    service.put(WRITER, "d", {"title": "a"}, if_match=None, if_none_match=None)
    service.delete(WRITER, "d", if_match=None)
    for if_none_match in (None, "*"):
        with pytest.raises(Conflict, match="admin restore"):
            service.put(WRITER, "d", {"title": "b"}, if_match=None, if_none_match=if_none_match)
    assert len(uow.versions) == 2  # nothing stored
    with pytest.raises(NotFound):
        service.list_versions(WRITER, "d", limit=5, page_token=None)
    assert service.restore(ADMIN, "d").title == "a"  # the admin path still works


def test_after_the_restore_window_the_id_starts_a_fresh_history(parts) -> None:
    service, _, _, clock = parts
    service.put(WRITER, "d", {"title": "old secret"}, if_match=None, if_none_match=None)
    service.change(
        WRITER,
        "d",
        MERGE_PATCH,
        {"title": "old 2"},
        if_match=service.put(WRITER, "d", {"title": "old 1"}, if_match="*", if_none_match=None)[
            0
        ].etag,
    )
    service.delete(WRITER, "d", if_match=None)
    clock.now += timedelta(days=31)
    again, created = service.put(WRITER, "d", {"title": "new"}, if_match=None, if_none_match="*")
    assert created and again.version == 5 and again.title == "new"
    page = service.list_versions(READER, "d", limit=2, page_token=None)
    assert [i["version"] for i in page.items] == [5] and page.next_page_token is None
    for old in (1, 2, 3, 4):
        with pytest.raises(NotFound):
            service.get_version(READER, "d", old)
        with pytest.raises(NotFound):
            service.restore_version(WRITER, "d", old, if_match=again.etag)


def test_versions_list_get_and_restore(parts) -> None:
    service, *_ = parts
    doc = service.create(WRITER, {"title": "v1"})
    v2 = service.change(WRITER, doc.id, MERGE_PATCH, {"title": "v2"}, if_match=doc.etag)
    page = service.list_versions(READER, doc.id, limit=1, page_token=None)
    assert [i["version"] for i in page.items] == [2] and page.next_page_token
    rest = service.list_versions(READER, doc.id, limit=5, page_token=page.next_page_token)
    assert [i["version"] for i in rest.items] == [1] and rest.next_page_token is None
    assert service.get_version(READER, doc.id, 1)["title"] == "v1"
    back = service.restore_version(WRITER, doc.id, 1, if_match=v2.etag)
    assert back.version == 3 and back.title == "v1"
    with pytest.raises(NotFound):
        service.get_version(READER, doc.id, 99)


def test_list_pages_newest_first_and_is_invalidated_by_writes(parts) -> None:
    service, *_ = parts
    ids = [
        service.create(WRITER, {"title": f"d{i}", "tags": ["even" if i % 2 == 0 else "odd"]}).id
        for i in range(5)
    ]
    page, cached = service.list_documents(READER, limit=2, page_token=None, tag=None)
    body = json.loads(page)
    assert cached == "miss" and [d["id"] for d in body["items"]] == ids[::-1][:2]
    assert service.list_documents(READER, limit=2, page_token=None, tag=None)[1] == "hit"
    seen = [d["id"] for d in body["items"]]
    token = body["next_page_token"]
    while token:
        nxt = json.loads(service.list_documents(READER, limit=2, page_token=token, tag=None)[0])
        seen += [d["id"] for d in nxt["items"]]
        token = nxt["next_page_token"]
    assert seen == ids[::-1]
    evens = json.loads(service.list_documents(READER, limit=10, page_token=None, tag="even")[0])
    assert len(evens["items"]) == 3
    newest = service.create(WRITER, {"title": "newest"})
    after_write, cached = service.list_documents(READER, limit=2, page_token=None, tag=None)
    assert cached == "miss" and json.loads(after_write)["items"][0]["id"] == newest.id


def test_cache_fill_never_overwrites_newer_version(parts) -> None:
    _, _, cache, _ = parts
    cache.put_if_newer("acme", "d", CachedDocument(5, '"v5"', "{}"))
    cache.put_if_newer("acme", "d", CachedDocument(4, '"v4"', "{}"))
    assert cache.get("acme", "d").version == 5


def test_writes_fence_the_cache_before_commit_or_record_dirty(parts) -> None:
    service, uow, cache, _ = parts
    doc = service.create(WRITER, {"title": "x"})
    changed = service.change(WRITER, doc.id, MERGE_PATCH, {"title": "y"}, if_match=doc.etag)
    assert cache.fences == [("acme", doc.id, 2)]
    cache.reachable = False
    service.change(WRITER, doc.id, MERGE_PATCH, {"title": "z"}, if_match=changed.etag)
    assert uow.cache_repairs == [("acme", doc.id, 3)], (
        "a write the cache could not fence is queued for repair"
    )


def test_conditional_get_answers_from_the_etag_key(parts) -> None:
    service, uow, _, _ = parts
    doc = service.create(WRITER, {"title": "x"})
    before = uow.transactions
    assert service.get(READER, doc.id, if_none_match=doc.etag).not_modified
    assert uow.transactions == before, "a cached validator needs no database read"


def test_a_read_first_repairs_what_writers_could_not_fence(parts) -> None:
    service, uow, cache, _ = parts
    doc = service.create(WRITER, {"title": "x"})
    service.get(READER, doc.id)  # cached at version 1
    cache.reachable = False
    service.change(WRITER, doc.id, MERGE_PATCH, {"title": "y"}, if_match=doc.etag)
    cache.docs[("acme", doc.id)] = CachedDocument(1, doc.etag, "stale")  # another process's view
    cache.reachable = True
    assert service.get(READER, doc.id).version == 2, "repaired (fenced) before the read"
    assert uow.cache_repairs == [] and cache.fences[-1] == ("acme", doc.id, 2)


def test_a_read_skips_the_cache_when_its_repair_queue_cannot_be_read() -> None:
    uow, cache = FakeUnitOfWork(), FakeCache()
    queue = FakeCacheRepairQueue(uow)
    service = DocumentService(uow, CacheCoherence(cache, uow, queue), page_secret="s")
    doc = service.create(WRITER, {"title": "x"})
    cache.docs[("acme", doc.id)] = CachedDocument(1, doc.etag, "not trusted now")
    queue.reachable = False
    rendered = service.get(READER, doc.id)
    assert rendered.cache == "miss" and json.loads(rendered.body)["title"] == "x"
    assert cache.repair_failures == 1


def test_put_answers_the_clear_fields_without_opening_what_it_just_sealed() -> None:
    """A PUT seals the personal-data fields for storage and answers with the
    values it was sent: no decryption of its own envelopes (a KMS call each)."""
    from chalicelib.adapters.pii import EnvelopeCipher, LocalKeyring
    from chalicelib.domain.pii import is_envelope
    from chalicelib.service_layer.pii_fields import PiiFields

    class Counting(EnvelopeCipher):
        opened = 0

        def decrypt(self, envelope, *, context):  # type: ignore[no-untyped-def]
            Counting.opened += 1
            return super().decrypt(envelope, context=context)

    pii = PiiFields(("email",), Counting(LocalKeyring([("k1", b"1" * 32)]), blind_key=None))
    uow = FakeUnitOfWork()
    service = DocumentService(uow, coherence(uow), page_secret="s", personal_data=pii)
    data = {"title": "t", "metadata": {"email": "a@example.com", "team": "x"}}
    created, _ = service.put(WRITER, "d1", data, if_match=None, if_none_match=None)
    replaced, _ = service.put(WRITER, "d1", data, if_match=created.etag, if_none_match=None)
    for doc in (created, replaced):
        assert doc.metadata == {"email": "a@example.com", "team": "x"}
    assert is_envelope(uow.docs[("acme", "d1")].metadata["email"])  # stored sealed
    assert Counting.opened == 0
