"""No read that starts after a write's acknowledgement returns an older version.

Eight clients hammer five documents through the local server (four worker
processes, each with its own cache client and pool); once normally, and once
with a delay injected between the PostgreSQL read and the cache fill, which
is exactly the window where a naive read-through cache serves stale data.
"""

from __future__ import annotations

import pytest

from tests.conftest import REDIS_URL, make_token
from tests.e2e.conftest import Client, LocalServer, server_env
from tests.e2e.history import run_history, stale_reads

pytestmark = pytest.mark.e2e


def _check(base: str, org: str) -> None:
    client = Client(base, make_token(org=org, roles=("writer",)))
    docs = [client.request("POST", "/documents", {"title": f"h{i}"}).json()["id"] for i in range(5)]
    history = run_history(client, docs, threads=8, ops_per_thread=60, write_ratio=0.3, seed=7)
    writes = [op for op in history if op.kind == "write"]
    reads = [op for op in history if op.kind == "read"]
    assert {op.status for op in reads} == {200}
    assert {op.status for op in writes} <= {200, 412}
    assert sum(op.status == 200 for op in writes) >= 20, (
        "enough writes won to make the check meaningful"
    )
    assert stale_reads(history) == []


def test_no_stale_reads(server: str) -> None:
    _check(server, "history")


def test_no_stale_reads_with_a_slow_cache_fill(database_url: str, redis_prefix: str) -> None:
    slow = LocalServer(
        server_env(database_url, REDIS_URL, redis_prefix + "slow:", DOCS_FAULT_FILL_DELAY_MS="30")
    )
    try:
        _check(slow.base, "history-slow-fill")
    finally:
        slow.stop()
