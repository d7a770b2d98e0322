"""Kill Redis or stop PostgreSQL under load (private instances) and check what clients see.

- Redis (SIGKILL mid-load, restarted empty on the same port): no request
  fails, /health says the cache is degraded while it is down, every worker's
  breaker closes again by itself and the cache serves hits again, and no read
  returns a version older than a write acknowledged before it started.
- PostgreSQL (``pg_ctl stop -m immediate`` mid-load, started again on the
  same port with its data): every failure is a 503 problem+json with
  Retry-After, the server recovers without a restart, and every write that was
  acknowledged is there afterwards with at least its acknowledged version.

Both servers are private (tests/faults/servers.py): the machine's shared PostgreSQL
and Redis are never stopped.
"""

from __future__ import annotations

import random
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

import psycopg
import pytest

from tests.conftest import REDIS_URL, make_token
from tests.e2e.conftest import Client, HttpResponse, LocalServer, server_env
from tests.e2e.history import MERGE_PATCH, Load, lost_updates, stale_reads
from tests.faults.servers import PrivatePostgres, PrivateRedis
from tests.polling import poll

pytestmark = pytest.mark.e2e


def _wait_for(predicate: Callable[[], bool], timeout_s: float = 30.0) -> bool:
    """Poll until ``predicate`` holds (convergence with a deadline, not a timing assertion)."""
    return poll(predicate, timeout_s=timeout_s)


def _health(base: str) -> HttpResponse:
    return Client(base).request("GET", "/health")


def test_redis_killed_mid_load(database_url: str, local_search_env: dict[str, str]) -> None:
    cache = PrivateRedis()
    cache.start()
    prefix = f"fr:{uuid.uuid4().hex[:6]}:"
    server = LocalServer(
        server_env(database_url, cache.url, prefix, DOCS_BREAKER_RESET_S="1", **local_search_env)
    )
    load: Load | None = None
    try:
        client = Client(server.base, make_token(org="faults-redis", roles=("writer",)))
        docs = [
            client.request("POST", "/documents", {"title": f"r{i}"}).json()["id"] for i in range(5)
        ]
        load = Load(client, docs, threads=6, ops_per_thread=400, write_ratio=0.3, seed=11).start()
        assert _wait_for(lambda: load.done >= 100), "load is running"

        cache.kill()
        killed_at = time.monotonic()
        assert _wait_for(lambda: len(load.ops_since(killed_at)) >= 100), "load goes on"
        for _ in range(8):  # every worker answers for itself
            health = _health(server.base)
            assert health.status == 200, "Redis down is not the service down"
            assert health.json()["checks"]["redis"] == "degraded"

        cache.start()  # same port, empty
        restarted_at = time.monotonic()
        assert _wait_for(
            lambda: all(_health(server.base).json()["checks"]["redis"] == "ok" for _ in range(8))
        ), "every worker's breaker closed by itself"
        assert _wait_for(lambda: any(op.cache == "hit" for op in load.ops_since(restarted_at))), (
            "reads are served from the cache again"
        )
        closed_at = time.monotonic()
        assert _wait_for(lambda: len(load.ops_since(closed_at)) >= 100), "load goes on"
        load.stop.set()
        history = load.join()

        reads = [op for op in history if op.kind == "read"]
        writes = [op for op in history if op.kind == "write"]
        assert {op.status for op in reads} == {200}, "no failed reads"
        assert {op.status for op in writes} <= {200, 412}, "no failed writes"
        outage = [op for op in writes if killed_at < op.start and op.end < restarted_at]
        assert any(op.status == 200 for op in outage), (
            "writes were acknowledged while Redis was down"
        )
        stale = [
            {
                "read_start": round(read.start - killed_at, 3),
                "read_version": read.version,
                "cache": read.cache,
                "acked_version": floor,
                "ack_end": [
                    round(w.end - killed_at, 3)
                    for w in writes
                    if w.doc == read.doc and w.version == floor and w.status == 200
                ],
            }
            for read, floor in stale_reads(history)
        ]
        restart = round(restarted_at - killed_at, 3)
        assert stale == [], f"stale reads (times after the kill; restart at {restart})"
        assert lost_updates(history) == []
    finally:
        if load is not None:
            load.stop.set()
            load.join()
        server.stop()
        cache.kill()


@dataclass
class _Outcome:
    method: str
    doc: str | None
    response: HttpResponse


def test_postgres_stopped_mid_load(redis_prefix: str) -> None:
    database = PrivatePostgres()
    database.start()
    server = LocalServer(
        server_env(database.url, REDIS_URL, redis_prefix + "fpg:", DOCS_DB_CONNECT_TIMEOUT_S="1")
    )
    acked: dict[str, int] = {}  # document -> highest acknowledged version
    outcomes: list[_Outcome] = []
    lock = threading.Lock()
    stop = threading.Event()
    errors: list[BaseException] = []
    try:
        client = Client(server.base, make_token(org="faults-pg", roles=("writer",)))

        def record(method: str, doc: str | None, r: HttpResponse) -> None:
            with lock:
                outcomes.append(_Outcome(method, doc, r))
                if r.status in (200, 201) and method != "GET":
                    body = r.json()
                    acked[body["id"]] = max(acked.get(body["id"], 0), body["version"])

        def writer(n: int) -> None:
            rng = random.Random(n)
            etags: dict[str, str | None] = {}  # own documents; None: unknown after a 503
            try:
                for i in range(1000):
                    if stop.is_set():
                        return
                    if len(etags) < 3 or rng.random() < 0.3:
                        r = client.request("POST", "/documents", {"title": f"w{n}-{i}"})
                        record("POST", None, r)
                        if r.status == 201:
                            etags[r.json()["id"]] = r.headers["etag"]
                        continue
                    doc = rng.choice(sorted(etags))
                    etag = etags[doc]
                    if etag is None:  # the last write's outcome is unknown: read first
                        r = client.request("GET", f"/documents/{doc}")
                        record("GET", doc, r)
                        if r.status == 200:
                            etags[doc] = r.headers["etag"]
                        continue
                    r = client.request(
                        "PATCH",
                        f"/documents/{doc}",
                        {"title": f"p{n}-{i}"},
                        headers={"Content-Type": MERGE_PATCH, "If-Match": etag},
                    )
                    record("PATCH", doc, r)
                    etags[doc] = r.headers["etag"] if r.status == 200 else None
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=writer, args=(n,)) for n in range(3)]
        for t in threads:
            t.start()
        assert _wait_for(lambda: len(acked) >= 12), "load is running"

        database.stop("immediate")
        assert _wait_for(lambda: sum(o.response.status == 503 for o in outcomes) >= 6), (
            "clients saw the outage"
        )
        down = _health(server.base)
        assert down.status == 503 and down.json()["checks"]["postgres"] == "down"

        database.start()  # same port, same data; the server is not restarted
        with lock:
            at_restart = len(outcomes)
        recovered = _wait_for(
            lambda: sum(o.response.status in (200, 201) for o in outcomes[at_restart:]) >= 15
        )
        stop.set()
        for t in threads:
            t.join()
        assert not errors, errors
        assert recovered, "the server recovered by itself, without a restart"
        assert _health(server.base).status == 200

        statuses = {o.response.status for o in outcomes}
        assert statuses <= {200, 201, 503}, f"only 503 for the outage, never {statuses}"
        assert 503 in statuses
        for o in outcomes:
            if o.response.status == 503:
                assert o.response.headers["content-type"] == "application/problem+json"
                assert int(o.response.headers["retry-after"]) >= 1
                assert o.response.json()["status"] == 503
        assert any(o.method == "PATCH" and o.response.status == 200 for o in outcomes)

        with psycopg.connect(database.url) as conn:
            stored = dict(
                conn.execute("SELECT id, version FROM documents WHERE org = 'faults-pg'").fetchall()
            )
        missing = {doc: v for doc, v in acked.items() if stored.get(doc, 0) < v}
        assert missing == {}, "every acknowledged write survived, at its version or later"
    finally:
        stop.set()
        server.stop()
        database.destroy()
