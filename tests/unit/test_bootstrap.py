"""The composition root: what it wires, what it leaves lazy, when it injects faults."""

from __future__ import annotations

import os
import subprocess
import sys

from chalicelib import bootstrap
from chalicelib.adapters.faults import PauseAfterIndexWrites, SlowCacheFills
from chalicelib.config import Settings
from chalicelib.domain.cache import CachedDocument
from chalicelib.domain.search_index import ItemResult
from tests.unit.fakes import FakeCache, FakeSearchIndex


def test_build_connects_nothing_and_leaves_heavy_adapters_for_later() -> None:
    c = bootstrap.build(Settings())  # unit tests refuse sockets: nothing connected
    assert "search_index" not in vars(c) and "content" not in vars(c) and "blobs" not in vars(c)
    assert c.documents.coherence is c.coherence and c.coherence.cache is c.cache
    assert c.bulk_documents.uow is not c.uow  # the bulkhead's own pool
    c.close()


def test_faults_are_wrappers_chosen_only_when_their_setting_is_non_zero() -> None:
    plain = bootstrap.build(Settings(opensearch_url="http://127.0.0.1:9"))
    assert plain.search_sync.index is plain.search_index
    faulty = bootstrap.build(
        Settings(fault_fill_delay_ms=30, fault_sync_pause_ms=60_000, opensearch_url="http://x:9")
    )
    assert isinstance(faulty.coherence.cache, SlowCacheFills)
    assert isinstance(faulty.search_sync.index, PauseAfterIndexWrites)
    assert faulty.search_index.alias == faulty.search_sync.index.alias


def test_slow_fills_wait_before_a_fill_and_nowhere_else() -> None:
    slept: list[float] = []
    cache = SlowCacheFills(FakeCache(), 0.03, sleep=slept.append)
    cache.fence("o", "d", 1)
    assert cache.get("o", "d") is None and slept == []
    cache.put_if_newer("o", "d", CachedDocument(1, '"e"', "{}"))
    assert slept == [0.03] and cache.get("o", "d") is not None


def test_index_writes_pause_after_the_index_acknowledged_them() -> None:
    events: list[str] = []
    index = FakeSearchIndex()
    index.create_index("docs-v1")
    index.swap_alias(None, "docs-v1")
    paused = PauseAfterIndexWrites(index, 60.0, sleep=lambda s: events.append(f"paused {s}"))
    results = paused.write([], [index.alias])
    events.append("returned")
    assert results == [] and index.writes == 1 and events == ["paused 60.0", "returned"]
    assert isinstance(results, list) and all(isinstance(r, ItemResult) for r in results)


def test_the_api_and_its_container_import_no_heavy_client() -> None:
    """Cold start: opensearch-py, boto3 and pypdf wait for the first request that needs them."""
    code = (
        "import sys, app; from chalicelib import bootstrap; bootstrap.build(); "
        "print(sorted(m for m in ('opensearchpy', 'boto3', 'pypdf') if m in sys.modules))"
    )
    env = {**os.environ, "POWERTOOLS_TRACE_DISABLED": "true"}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True
    )
    assert out.stdout.strip() == "[]"
