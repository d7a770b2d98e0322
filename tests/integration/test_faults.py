"""Breaker disagreement between processes must not let a stale entry outlive a write.

Right after Redis comes back (the fault campaign's Redis kill), one worker's
breaker has closed again (it fills and serves from the cache) while another's is
still open for the rest of its cool-down.
If that second worker skipped its pre-commit fence and post-commit write-back
because of its *own* open breaker, the first one kept serving the version it
had cached before the write, after the write was acknowledged, until its next
cache-repair poll.  Two containers on one Redis play the two workers here.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from chalicelib import bootstrap
from chalicelib.config import Settings
from chalicelib.domain.patching import MERGE_PATCH
from chalicelib.domain.principal import Principal
from devtools.services import free_port

pytestmark = pytest.mark.integration
WRITER = Principal("alice", "faults-org", frozenset({"writer"}))


@pytest.fixture
def workers(settings: Settings) -> Iterator[tuple[Any, Any]]:
    # the reader's once-a-second repair poll must not be what saves it: make it rare
    reader = bootstrap.build(settings.model_copy(update={"cache_repair_interval_s": 60.0}))
    writer = bootstrap.build(settings)
    try:
        yield reader, writer
    finally:
        reader.close()
        writer.close()


def _dirty(container: Any, doc_id: str) -> list[int]:
    return [v for _, d, v in container.coherence.queue.pending(10_000) if d == doc_id]


def _open(breaker: Any, threshold: int) -> None:
    for _ in range(threshold):
        breaker.failure()
    assert breaker.state == "open"


def test_a_writer_whose_breaker_is_still_open_fences_a_reachable_redis(
    workers: tuple[Any, Any], settings: Settings
) -> None:
    reader, writer = workers
    doc = reader.documents.create(WRITER, {"title": "v1"})
    assert reader.documents.get(WRITER, doc.id).cache == "hit"  # v1 cached, repair poll done

    _open(writer.cache.breaker, settings.breaker_failure_threshold)  # Redis just came back
    v2 = writer.documents.change(WRITER, doc.id, MERGE_PATCH, {"title": "v2"}, if_match=doc.etag)

    got = reader.documents.get(WRITER, doc.id)
    assert (got.version, json.loads(got.body or "{}").get("title")) == (v2.version, "v2"), (
        "a read after the acknowledged write served the version cached before it"
    )
    assert writer.cache.breaker.state == "closed", "the write's fence was a successful probe"
    assert _dirty(writer, doc.id) == [], "nothing left to repair"


def test_a_writer_that_cannot_reach_redis_still_commits_and_queues_a_repair(
    settings: Settings,
) -> None:
    dead = bootstrap.build(
        settings.model_copy(update={"redis_url": f"redis://127.0.0.1:{free_port()}/0"})
    )
    live = bootstrap.build(settings)
    try:
        doc = live.documents.create(WRITER, {"title": "v1"})
        _open(dead.cache.breaker, settings.breaker_failure_threshold)
        for n in range(2, 5):  # each write tries its fence, fails fast, commits anyway
            doc = dead.documents.change(
                WRITER, doc.id, MERGE_PATCH, {"title": f"v{n}"}, if_match=doc.etag
            )
        assert doc.version == 4
        assert dead.cache.breaker.state == "open"
        assert _dirty(dead, doc.id) == [4]
        live.cache._next_repair = 0.0  # its poll is due: it repairs before trusting the cache
        assert live.documents.get(WRITER, doc.id).version == 4
        assert _dirty(live, doc.id) == []
    finally:
        dead.close()
        live.close()
