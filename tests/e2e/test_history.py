"""No read that starts after a write's acknowledgement returns an older version.

Eight clients hammer five documents (70 % reads, 30 % merge-patch writes with
If-Match) through the local server: four worker processes, each with its own
cache client, breaker and pool, like four warm Lambda environments.  Once
normally, and once with a delay injected between the PostgreSQL read and the
cache fill (``DOCS_FAULT_FILL_DELAY_MS``), which is exactly the window where a
naive read-through cache writes an old version over a newer one.  Each run is
bounded by operation count (8 x 75 = 600), not by time.
"""

from __future__ import annotations

import pytest

from tests.conftest import REDIS_URL, make_token
from tests.e2e.conftest import Client, LocalServer, server_env
from tests.e2e.history import Op, lost_updates, regressing_reads, run_history, stale_reads

pytestmark = pytest.mark.e2e


def _check(base: str, org: str) -> list[Op]:
    client = Client(base, make_token(org=org, roles=("writer",)))
    docs = [client.request("POST", "/documents", {"title": f"h{i}"}).json()["id"] for i in range(5)]
    history = run_history(client, docs, threads=8, ops_per_thread=75, write_ratio=0.3, seed=7)
    writes = [op for op in history if op.kind == "write"]
    reads = [op for op in history if op.kind == "read"]
    assert len(history) == 600
    assert {op.status for op in reads} == {200}, "no failed reads"
    assert {op.status for op in writes} <= {200, 412}, "only If-Match races may lose"
    won = [op for op in writes if op.status == 200]
    assert len(won) >= 40, "enough writes won to make the check meaningful"
    assert {op.cache for op in reads} == {"hit", "miss"}, "both paths were exercised"
    assert stale_reads(history) == []
    assert regressing_reads(history) == []
    assert lost_updates(history) == []
    # and the final state is the last acknowledged version of each document
    for doc in docs:
        final = client.request("GET", f"/documents/{doc}").json()["version"]
        assert final == max([1] + [op.version for op in won if op.doc == doc])
    return history


def test_no_stale_reads(server: str) -> None:
    _check(server, "history")


def test_no_stale_reads_with_a_slow_cache_fill(
    database_url: str, redis_prefix: str, local_search_env: dict[str, str]
) -> None:
    slow = LocalServer(
        server_env(
            database_url,
            REDIS_URL,
            redis_prefix + "slow:",
            DOCS_FAULT_FILL_DELAY_MS="30",
            **local_search_env,
        )
    )
    try:
        _check(slow.base, "history-slow-fill")
    finally:
        slow.stop()


def test_the_checker_catches_what_it_should() -> None:
    """The checks above can fail: a stale read, a regressing read, a lost update."""
    write = Op("write", "d", start=1.0, end=2.0, version=5, status=200)
    late_old = Op("read", "d", start=2.5, end=3.0, version=4, status=200)
    overlapping = Op("read", "d", start=1.5, end=2.6, version=4, status=200)
    assert stale_reads([write, late_old]) == [(late_old, 5)]
    assert stale_reads([write, overlapping]) == [], "a read overlapping the write may see either"
    newer_read = Op("read", "d", start=0.1, end=0.2, version=7, status=200)
    assert regressing_reads([newer_read, late_old]) == [(late_old, 7)]
    twin = Op("write", "d", start=1.1, end=2.1, version=5, status=200)
    assert lost_updates([write, twin]) == [("d", 5)]
