"""The search sync (outbox → index) against in-memory fakes of its ports."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from chalicelib.domain.errors import SearchUnavailable
from chalicelib.domain.patching import MERGE_PATCH
from chalicelib.domain.principal import Principal
from chalicelib.domain.search_index import ItemResult, index_id
from chalicelib.service_layer.documents import DocumentService
from chalicelib.service_layer.search_sync import SearchSync
from chalicelib.settings_groups import SearchSettings
from tests.unit.fakes import FakeOutbox, FakeSearchIndex, FakeUnitOfWork, coherence

WRITER = Principal("alice", "acme", frozenset({"writer"}))


class World:
    def __init__(self, **options: Any) -> None:
        self.uow = FakeUnitOfWork()
        self.documents = DocumentService(self.uow, coherence(self.uow), page_secret="s")
        self.outbox = FakeOutbox(self.uow)
        self.index = FakeSearchIndex()
        self.sync = SearchSync(self.outbox, self.index, SearchSettings(retry_base_s=0.0, **options))

    def indexed(self) -> dict[str, int]:
        return {key: version for key, (version, _) in self.index.documents().items()}


@pytest.fixture
def world() -> World:
    return World(max_attempts=3)


def test_first_run_builds_the_index_then_syncs_every_row(world: World) -> None:
    a = world.documents.create(WRITER, {"title": "alpha"})
    b = world.documents.create(WRITER, {"title": "beta"})
    world.documents.change(WRITER, b.id, MERGE_PATCH, {"title": "beta 2"}, if_match=b.etag)
    report = world.sync.drain()
    assert world.index.live == "docs-v1" and world.outbox.registry == {"docs-v1": "live"}
    assert world.indexed() == {index_id("acme", a.id): 1, index_id("acme", b.id): 2}
    assert report.rows == 3 and report.indexed == 2 and not world.outbox.pending()


def test_a_delete_removes_the_document_and_a_replay_changes_nothing(world: World) -> None:
    doc = world.documents.create(WRITER, {"title": "gone soon"})
    world.sync.drain()
    world.documents.delete(WRITER, doc.id, if_match=None)
    world.sync.drain()
    assert world.indexed() == {}
    world.outbox.processed.clear()  # every row again, in order: the same index
    world.sync.drain()
    assert world.indexed() == {}


def test_each_row_indexes_the_current_state_not_the_rows_version(world: World) -> None:
    doc = world.documents.create(WRITER, {"title": "v1"})
    world.documents.change(WRITER, doc.id, MERGE_PATCH, {"title": "v2"}, if_match=doc.etag)
    world.sync.run_once()
    (version, source), *_ = world.index.documents().values()
    assert (version, source["title"]) == (2, "v2")


def test_a_refused_document_backs_off_then_is_dead_lettered(world: World) -> None:
    bad = world.documents.create(WRITER, {"title": "bad"})
    good = world.documents.create(WRITER, {"title": "good"})
    world.sync.drain()  # builds the index with both
    world.documents.change(WRITER, bad.id, MERGE_PATCH, {"title": "bad 2"}, if_match=bad.etag)
    world.documents.change(WRITER, good.id, MERGE_PATCH, {"title": "good 2"}, if_match=good.etag)
    world.index.refusals[index_id("acme", bad.id)] = ItemResult(
        "", "", ok=False, reason="mapper_parsing_exception: no"
    )
    reports = [world.sync.run_once() for _ in range(3)]
    assert [r.retried for r in reports] == [1, 1, 0]
    assert reports[-1].dead_lettered == 1 and list(world.outbox.dead.values()) == [
        "mapper_parsing_exception: no"
    ]
    assert world.indexed()[index_id("acme", good.id)] == 2  # the rest of the batch went on
    assert all(counted for *_, counted in world.outbox.retries)


def test_a_busy_index_is_retried_without_counting_attempts(world: World) -> None:
    doc = world.documents.create(WRITER, {"title": "x"})
    world.sync.drain()
    world.documents.change(WRITER, doc.id, MERGE_PATCH, {"title": "y"}, if_match=doc.etag)
    world.index.refusals[index_id("acme", doc.id)] = ItemResult(
        "", "", ok=False, retryable=True, reason="es_rejected_execution_exception"
    )
    for _ in range(5):
        assert world.sync.run_once().retried == 1
    assert world.outbox.dead == {} and world.outbox.attempts == {}
    assert not any(counted for *_, counted in world.outbox.retries)


def test_an_unreachable_index_leaves_the_batch_untouched(world: World) -> None:
    world.documents.create(WRITER, {"title": "x"})
    world.sync.drain()
    world.documents.create(WRITER, {"title": "y"})
    world.index.reachable = False
    with pytest.raises(SearchUnavailable):
        world.sync.run_once()
    assert len(world.outbox.pending()) == 1 and world.outbox.attempts == {}
    world.index.reachable = True
    assert world.sync.drain().indexed == 1 and not world.outbox.pending()


def test_an_index_of_an_older_schema_is_not_written_to(world: World) -> None:
    world.documents.create(WRITER, {"title": "x"})
    world.sync.drain()
    world.sync.forget_index()
    world.index.schemas["docs-v1"] = 1
    world.documents.create(WRITER, {"title": "y"})
    with pytest.raises(SearchUnavailable, match="reindex"):
        world.sync.run_once()
    assert len(world.outbox.pending()) == 1
    world.sync.reindex()  # a reindex builds an index of the current schema: the rows flow
    assert world.sync.drain().indexed == 1 and world.index.live == "docs-v2"


def test_documents_another_consumer_holds_are_left_for_it(world: World) -> None:
    mine = world.documents.create(WRITER, {"title": "mine"})
    theirs = world.documents.create(WRITER, {"title": "theirs"})
    world.sync.reindex()
    world.outbox.held.add(("acme", theirs.id))
    report = world.sync.run_once()
    assert (report.indexed, report.skipped) == (1, 1)
    assert [r.doc_id for r in world.outbox.pending()] == [theirs.id]
    assert mine.id not in {r.doc_id for r in world.outbox.pending()}


def test_a_batch_also_feeds_the_index_a_reindex_is_building(world: World) -> None:
    world.sync.reindex()
    world.index.create_index("docs-v7")
    world.outbox.register_building("docs-v7")
    doc = world.documents.create(WRITER, {"title": "x"})
    world.sync.run_once()
    assert index_id("acme", doc.id) in world.index.documents("docs-v7")
    assert index_id("acme", doc.id) in world.index.documents()


def test_one_reindex_at_a_time(world: World) -> None:
    with world.outbox.exclusive_reindex(), pytest.raises(SearchUnavailable, match="already"):
        world.sync.reindex()


def test_a_reindex_drops_the_debris_of_an_interrupted_one(world: World) -> None:
    world.sync.reindex()
    world.index.create_index("docs-v2")
    world.outbox.register_building("docs-v2")  # a reindex that was killed
    report = world.sync.reindex(drop_old_now=True)
    assert report.index == "docs-v3" and report.previous == "docs-v1"
    assert "docs-v2" not in world.index.indexes and "docs-v2" not in world.outbox.registry
    assert "docs-v1" not in world.index.indexes  # dropped now: no grace period


def test_drain_stops_when_only_back_offs_remain(world: World) -> None:
    doc = world.documents.create(WRITER, {"title": "x"})
    world.sync.drain()
    world.documents.change(WRITER, doc.id, MERGE_PATCH, {"title": "y"}, if_match=doc.etag)
    world.index.refusals[index_id("acme", doc.id)] = ItemResult("", "", ok=False, reason="no")
    world.sync.retry_base_s = 60.0  # the row waits: not due again within this drain
    report = world.sync.drain()
    assert report.batches == 1 and report.retried == 1


def test_sync_document_handles_only_that_documents_rows(world: World) -> None:
    world.sync.reindex()
    a = world.documents.create(WRITER, {"title": "a"})
    world.documents.create(WRITER, {"title": "b"})
    report = world.sync.sync_document("acme", a.id)
    assert report.indexed == 1 and len(world.outbox.pending()) == 1


def test_prune_keeps_the_retention_and_stats_are_plain_numbers() -> None:
    world = World(outbox_retention=timedelta(days=7))
    world.documents.create(WRITER, {"title": "x"})
    world.sync.prune()
    assert world.outbox.pruned_older_than == timedelta(days=7)
    assert world.sync.stats() == {"lag_s": 0.0, "backlog": 1, "dead_letters": 0}
