"""POST /search and GET /changes use cases against in-memory fakes of their ports."""

from __future__ import annotations

from dataclasses import replace

import pytest

from chalicelib.domain.errors import BadRequest, Forbidden, SearchUnavailable
from chalicelib.domain.patching import MERGE_PATCH
from chalicelib.domain.principal import Principal
from chalicelib.service_layer.documents import DocumentService
from chalicelib.service_layer.search import SearchService
from chalicelib.service_layer.search_sync import SearchSync
from tests.unit.fakes import FakeOutbox, FakeSearchIndex, FakeUnitOfWork, coherence

WRITER = Principal("alice", "acme", frozenset({"writer"}))
READER = Principal("rita", "acme", frozenset({"reader"}))
OTHER = Principal("eve", "evil", frozenset({"admin"}))
GUEST = Principal("gus", "acme", frozenset())


class World:
    def __init__(self) -> None:
        self.uow = FakeUnitOfWork()
        self.documents = DocumentService(self.uow, coherence(self.uow), page_secret="s")
        self.index = FakeSearchIndex()
        self.sync = SearchSync(FakeOutbox(self.uow), self.index)
        self.search = SearchService(self.index, self.uow, page_secret="s")
        self.slept: list[float] = []

    def sleep(self, seconds: float) -> None:
        """The long-poll's pause: a write lands while it waits."""
        self.slept.append(seconds)
        if len(self.slept) == 2:
            self.documents.create(WRITER, {"title": "late"})


@pytest.fixture
def world() -> World:
    return World()


def test_search_sees_only_the_callers_org_and_pages_through_it(world: World) -> None:
    mine = [world.documents.create(WRITER, {"title": f"doc {i}"}).id for i in range(5)]
    world.documents.create(OTHER, {"title": "doc of another org"})
    world.sync.drain()
    seen, token = [], None
    while True:
        body = {"size": 2, **({"page_token": token} if token else {})}
        page = world.search.search(READER, body)
        seen += [hit["id"] for hit in page["hits"]]
        token = page["next_page_token"]
        if token is None:
            break
    assert sorted(seen) == sorted(mine) and page["total"] == 5
    assert all(q["query"]["bool"]["filter"][0] == {"term": {"org": "acme"}}
               for q in world.index.queries)  # fmt: skip


def test_a_page_token_is_bound_to_its_org_and_search(world: World) -> None:
    for i in range(3):
        world.documents.create(WRITER, {"title": f"doc {i}"})
    world.sync.drain()
    token = world.search.search(READER, {"size": 1})["next_page_token"]
    with pytest.raises(BadRequest):
        world.search.search(OTHER, {"size": 1, "page_token": token})
    with pytest.raises(BadRequest):
        world.search.search(READER, {"size": 1, "q": "other", "page_token": token})


def test_search_needs_the_reader_role_and_a_reachable_index(world: World) -> None:
    with pytest.raises(Forbidden):
        world.search.search(GUEST, {})
    world.index.reachable = False
    with pytest.raises(SearchUnavailable):
        world.search.search(READER, {})


def test_the_feed_resumes_exactly_and_never_shows_another_org(world: World) -> None:
    start = world.search.changes(READER, since="now", limit=10)
    assert start["changes"] == []
    doc = world.documents.create(WRITER, {"title": "x"})
    world.documents.create(OTHER, {"title": "not yours"})
    world.documents.change(WRITER, doc.id, MERGE_PATCH, {"title": "y"}, if_match=doc.etag)
    world.documents.delete(WRITER, doc.id, if_match=None)
    page = world.search.changes(READER, since=start["next"], limit=10)
    assert [(c["id"], c["version"], c["deleted"]) for c in page["changes"]] == [
        (doc.id, 1, False),
        (doc.id, 2, False),
        (doc.id, 3, True),
    ]
    assert all(c["at"].endswith("Z") for c in page["changes"])
    after_first = world.search.changes(READER, since=page["changes"][0]["seq"], limit=10)
    assert [c["version"] for c in after_first["changes"]] == [2, 3]
    assert world.search.changes(READER, since=page["next"], limit=10)["changes"] == []
    everything = world.search.changes(READER, since="0", limit=10)
    assert {c["id"] for c in everything["changes"]} == {doc.id}


def test_a_feed_cursor_opens_only_for_its_org(world: World) -> None:
    cursor = world.search.changes(READER, since="now", limit=10)["next"]
    with pytest.raises(BadRequest):
        world.search.changes(OTHER, since=cursor, limit=10)
    with pytest.raises(BadRequest):
        world.search.changes(READER, since="17", limit=10)


def test_a_long_poll_returns_as_soon_as_a_change_arrives(world: World) -> None:
    cursor = world.search.changes(READER, since="now", limit=10)["next"]
    page = world.search.changes(READER, since=cursor, limit=10, longpoll_s=30, sleep=world.sleep)
    assert [c["version"] for c in page["changes"]] == [1] and len(world.slept) == 2


def test_figures_count_only_what_the_caller_may_read_now(world: World) -> None:
    """A document made private in the database but still open in the index: no
    figure counts it, and the search makes the same calls as when it matched
    nothing at all (the time of an empty answer tells nothing)."""
    from chalicelib.domain.search import TOTAL_CHECKED

    hidden = world.documents.create(WRITER, {"title": "secret"})
    world.sync.drain()
    world.uow.docs[("acme", hidden.id)] = replace(hidden, visibility="private")  # not synced

    def calls(body: dict[str, object]) -> tuple[dict[str, object], list[int], int]:
        queries, transactions = len(world.index.queries), world.uow.transactions
        result = world.search.search(READER, body)
        sizes = [q["size"] for q in world.index.queries[queries:]]
        return result, sizes, world.uow.transactions - transactions

    answer, sizes, reads = calls({"size": 1})
    assert answer == {"hits": [], "total": 0, "total_relation": "eq", "next_page_token": None}
    nothing, same_sizes, same_reads = calls({"size": 1, "filter": {"tags": ["none"]}})
    assert nothing == answer
    assert sizes == same_sizes == [TOTAL_CHECKED + 1, 1] and reads == same_reads == 1
    # readable documents around it: counted, paged, and the token never follows it
    kept = [world.documents.create(WRITER, {"title": f"open {i}"}).id for i in range(2)]
    world.sync.drain()
    world.uow.docs[("acme", hidden.id)] = replace(hidden, visibility="private")
    seen, token = [], None
    while True:
        page = world.search.search(READER, {"size": 1, **({"page_token": token} if token else {})})
        assert page["total"] == 2 and page["total_relation"] == "eq"
        seen += [h["id"] for h in page["hits"]]
        token = page["next_page_token"]
        if token is None:
            break
    assert sorted(seen) == sorted(kept)
