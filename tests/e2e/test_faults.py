"""Kill Redis or PostgreSQL under load (private instances) and check what clients see."""

from __future__ import annotations

import threading
import time
import uuid

import psycopg
import pytest

from tests.conftest import REDIS_URL, make_token
from tests.e2e.conftest import Client, LocalServer, server_env
from tests.e2e.history import run_history, stale_reads
from tests.faults import PrivatePostgres, PrivateRedis

pytestmark = pytest.mark.e2e


def _wait_for(predicate, timeout_s: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.2)
    return False


def test_redis_killed_mid_load(database_url: str) -> None:
    cache = PrivateRedis()
    cache.start()
    server = LocalServer(
        server_env(database_url, cache.url, f"fr:{uuid.uuid4().hex[:6]}:", DOCS_BREAKER_RESET_S="1")
    )
    try:
        client = Client(server.base, make_token(org="faults-redis", roles=("writer",)))
        docs = [
            client.request("POST", "/documents", {"title": f"r{i}"}).json()["id"] for i in range(4)
        ]
        before = run_history(client, docs, threads=4, ops_per_thread=25, write_ratio=0.2, seed=1)

        cache.kill()
        during = run_history(client, docs, threads=4, ops_per_thread=25, write_ratio=0.2, seed=2)
        health = client.request("GET", "/health")
        assert health.status == 200 and health.json()["checks"]["redis"] == "degraded"

        cache.start()  # same port, empty
        assert _wait_for(
            lambda: all(
                Client(server.base).request("GET", "/health").json()["checks"]["redis"] == "ok"
                for _ in range(6)
            )
        ), "every worker's breaker closed by itself"
        after = run_history(client, docs, threads=4, ops_per_thread=25, write_ratio=0.2, seed=3)

        history = before + during + after
        assert {op.status for op in history if op.kind == "read"} == {200}, "no failed reads"
        assert {op.status for op in history if op.kind == "write"} <= {200, 412}
        assert any(op.status == 200 for op in during if op.kind == "write"), "writes went on"
        assert stale_reads(history) == []
        hits = [client.request("GET", f"/documents/{d}").headers["x-cache"] for d in docs * 2]
        assert "hit" in hits, "the cache is used again after Redis came back"
    finally:
        server.stop()
        cache.kill()


def test_postgres_stopped_mid_load(redis_prefix: str) -> None:
    database = PrivatePostgres()
    database.start()
    server = LocalServer(
        server_env(database.url, REDIS_URL, redis_prefix + "fpg:", DOCS_DB_CONNECT_TIMEOUT_S="1")
    )
    acknowledged: list[str] = []
    outcomes: list[tuple[int, dict[str, str], bytes]] = []
    lock = threading.Lock()
    stop = threading.Event()
    try:
        client = Client(server.base, make_token(org="faults-pg", roles=("writer",)))

        def writer(n: int) -> None:
            for i in range(400):
                if stop.is_set():
                    return
                r = client.request("POST", "/documents", {"title": f"w{n}-{i}"})
                with lock:
                    outcomes.append((r.status, r.headers, r.body))
                    if r.status == 201:
                        acknowledged.append(r.json()["id"])

        threads = [threading.Thread(target=writer, args=(n,)) for n in range(3)]
        for t in threads:
            t.start()
        assert _wait_for(lambda: len(acknowledged) >= 20)
        database.stop("immediate")
        assert _wait_for(lambda: sum(o[0] == 503 for o in outcomes) >= 3), "clients saw the outage"
        database.start()
        count_at_restart = len(acknowledged)
        recovered = _wait_for(lambda: len(acknowledged) >= count_at_restart + 20)
        stop.set()
        for t in threads:
            t.join()
        assert recovered, "the server recovered by itself, without a restart"

        assert {status for status, _, _ in outcomes} <= {201, 503}
        for status, headers, _ in outcomes:
            if status == 503:
                assert headers["content-type"] == "application/problem+json"
                assert int(headers["retry-after"]) >= 1
        with psycopg.connect(database.url) as conn:
            stored = {
                row[0] for row in conn.execute("SELECT id FROM documents WHERE org = 'faults-pg'")
            }
        assert set(acknowledged) <= stored, "every acknowledged write survived"
    finally:
        stop.set()
        server.stop()
        database.destroy()
