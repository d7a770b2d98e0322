"""Search sync: lag from commit to searchable at a steady write rate, and backfill speed.

    .venv/bin/python -m benchmarks.bench_search_sync [--rate 200] [--seconds 60] [--docs 100000]

Phase 1 — lag.  Writers create documents through ``DocumentService`` at a
steady ``--rate`` per second for ``--seconds`` (paced: write *i* is due at
``start + i / rate``; the achieved rate is reported).  Writes NOTIFY at commit
(``DOCS_SEARCH_NUDGE=notify``) and the consumer runs in its own process
(``python -m devtools.cli sync``, the local LISTEN/NOTIFY loop), as the
consumer Lambda would run apart from the API.  Two lag figures:

- *acknowledged*: per outbox row, ``processed_at - created_at`` (transaction
  start of the write, to when the consumer marked the row after OpenSearch
  acknowledged the bulk write) — every write is counted;
- *searchable*: for every 20th write, a prober searches for the document's
  unique word until it appears (polling every 10 ms), from the moment the
  write's transaction returned — what a client sees, refresh included.

Target: p99 <= 1 s for both.

Phase 2 — backfill.  ``--docs`` documents are inserted with one SQL statement
(not timed), then ``SearchSync.reindex`` builds a fresh index from PostgreSQL:
documents/s over the whole reindex (backfill, catch-up, alias swap).

OpenSearch: OPENSEARCH_URL when set, else the in-memory server.  PostgreSQL:
a private database (dropped at the end) on DATABASE_URL's server.  Prints a
table and one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

os.environ.setdefault("POWERTOOLS_TRACE_DISABLED", "true")
os.environ.setdefault("POWERTOOLS_METRICS_DISABLED", "true")
os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "WARNING")

from chalicelib import bootstrap
from chalicelib.config import Settings
from chalicelib.domain.errors import SearchUnavailable
from chalicelib.domain.principal import Principal
from tests.conftest import REDIS_URL, admin_connection, create_database, drop_database

ROOT = Path(__file__).resolve().parents[1]


def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered)) - 1))]


SERIES_POINTS = 3000


def bare_index_ms(container: Any, alias: str, n: int = 200) -> dict[str, float]:
    """p50/p99 of one bare opensearch-py ``index`` call (external version, the same
    document shape), the least a sync of one write has to do."""
    from datetime import UTC, datetime

    from chalicelib.domain.search_index import search_document

    now = datetime.now(UTC)
    times: list[float] = []
    for i in range(n):
        row = {"org": "bench-baseline", "id": f"b{i}", "version": 1, "title": f"bench {i}",
               "body": {"t": "baseline"}, "tags": [], "owner": "bench", "created_at": now,
               "updated_at": now, "deleted_at": None}  # fmt: skip
        doc = search_document(row, max_chars=1000)
        started = time.monotonic()
        container.search_index.client.index(
            index=alias, id=doc.index_id, body=doc.source, version=1, version_type="external"
        )
        times.append(time.monotonic() - started)
    return {p: round(pct(times, float(p)) * 1000, 2) for p in ("50", "99")}


def lag_phase(settings: Settings, rate: float, seconds: float, writers: int) -> dict[str, Any]:
    container = bootstrap.build(settings)
    container.search_sync.reindex()  # the alias exists before the consumer starts
    baseline = bare_index_ms(container, settings.search_alias)
    env = {
        **os.environ,
        "DATABASE_URL": settings.database_url,
        "REDIS_URL": settings.redis_url,
        "DOCS_REDIS_KEY_PREFIX": settings.redis_key_prefix,
        "OPENSEARCH_URL": str(settings.opensearch_url),
        "DOCS_SEARCH_ALIAS": settings.search_alias,
    }
    consumer = subprocess.Popen(
        [sys.executable, "-m", "devtools.cli", "sync"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    time.sleep(1.0)
    who = Principal("bench", "bench-sync", frozenset({"writer"}))
    total = int(rate * seconds)
    start = time.monotonic() + 0.2
    lock = threading.Lock()
    next_i = [0]
    probes: list[tuple[str, float]] = []
    visible: list[float] = []
    errors: list[str] = []
    probe_stop = threading.Event()
    index = container.search_index

    def writer() -> None:
        while True:
            with lock:
                i = next_i[0]
                next_i[0] += 1
            if i >= total:
                return
            due = start + i / rate
            delay = due - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            word = f"w{uuid.uuid4().hex[:12]}"
            try:
                container.documents.create(who, {"title": f"bench {i}", "body": {"t": word}})
            except Exception as exc:
                errors.append(repr(exc))
                continue
            if i % 20 == 0:
                with lock:
                    probes.append((word, time.monotonic()))

    def prober() -> None:
        pending: list[tuple[str, float]] = []
        while not probe_stop.is_set() or pending or probes:
            with lock:
                pending += probes
                probes.clear()
            still = []
            for word, committed in pending:
                body = {"query": {"bool": {"must": [{"match": {"body_text": word}}],
                                           "filter": [{"term": {"org": "bench-sync"}}]}},
                        "size": 1}  # fmt: skip
                try:
                    hits = index.search(body)["hits"]["hits"]
                except SearchUnavailable:  # an overloaded search backend: ask again
                    still.append((word, committed))
                    continue
                if hits:
                    visible.append(time.monotonic() - committed)
                elif time.monotonic() - committed < 30:
                    still.append((word, committed))
                else:
                    errors.append(f"never searchable: {word}")
            pending = still
            time.sleep(0.01)

    threads = [threading.Thread(target=writer) for _ in range(writers)]
    probe = threading.Thread(target=prober)
    probe.start()
    began = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - began
    probe_stop.set()
    probe.join()
    deadline = time.monotonic() + 60
    while container.outbox.stats().backlog and time.monotonic() < deadline:
        time.sleep(0.1)
    consumer.terminate()
    consumer.wait(10)
    with admin_connection(container) as conn:  # every org's rows: the admin login
        rows = conn.execute(
            "SELECT EXTRACT(EPOCH FROM processed_at - created_at)::float8 AS lag "
            "FROM outbox WHERE processed_at IS NOT NULL"
        ).fetchall()
    acked = [r["lag"] for r in rows]
    with admin_connection(container) as conn:
        timeline = conn.execute(
            "SELECT EXTRACT(EPOCH FROM created_at - min(created_at) OVER ())::float8 AS t, "
            "EXTRACT(EPOCH FROM processed_at - created_at)::float8 AS lag "
            "FROM outbox WHERE processed_at IS NOT NULL ORDER BY created_at"
        ).fetchall()
    step = max(1, len(timeline) // SERIES_POINTS)
    series = [[round(r["t"], 3), round(r["lag"] * 1000, 2)] for r in timeline[::step]]
    container.close()
    return {
        "series": series,
        "baseline_index_ms": baseline,
        "writes": total - len([e for e in errors if not e.startswith("never")]),
        "target_rate": rate,
        "achieved_rate": round(total / elapsed, 1),
        "acked_lag_ms": {p: round(pct(acked, p) * 1000, 1) for p in (50, 90, 99)},
        "acked_n": len(acked),
        "searchable_lag_ms": {p: round(pct(visible, p) * 1000, 1) for p in (50, 90, 99)},
        "searchable_n": len(visible),
        "errors": errors[:10],
        "pass": pct(acked, 99) <= 1.0 and pct(visible, 99) <= 1.0,
    }


def backfill_phase(settings: Settings, docs: int) -> dict[str, Any]:
    container = bootstrap.build(settings)
    with admin_connection(container) as conn:  # seeds every org: the admin login
        conn.execute(
            "INSERT INTO documents (org, id, title, body, tags, metadata, version, owner, "
            "created_at, updated_at) SELECT 'bench-fill-' || (g %% 10), 'd' || g, "
            "'Document number ' || g, jsonb_build_object('text', 'body text of document ' || g "
            "|| ' with a few more words to index'), ARRAY['t' || (g %% 7)], '{}'::jsonb, 1, "
            "'owner', now(), now() FROM generate_series(1, %s) AS g",
            (docs,),
        )
    started = time.monotonic()
    report = container.search_sync.reindex(batch=2000)
    seconds = time.monotonic() - started
    container.search_index.refresh()
    held = container.search_index.client.count(index=settings.search_alias)["count"]
    container.close()
    return {
        "docs": docs,
        "indexed": held,
        "seconds": round(seconds, 2),
        "docs_per_s": round(report.backfilled / seconds, 0),
        "failed": len(report.failed),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rate", type=float, default=200)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--writers", type=int, default=4)
    parser.add_argument("--docs", type=int, default=100_000)
    args = parser.parse_args()

    server = None
    url = os.environ.get("OPENSEARCH_URL")
    if not url:
        from osmem_server import OsmemServer

        server = OsmemServer.start(japanese=False)
        url = server.url
    results: dict[str, Any] = {"opensearch": "OPENSEARCH_URL" if server is None else "in-memory"}
    for phase in ("lag", "backfill"):
        db = create_database()
        settings = Settings(
            database_url=db,
            redis_url=REDIS_URL,
            redis_key_prefix=f"bench:{uuid.uuid4().hex[:8]}:",
            opensearch_url=url,
            search_alias=f"bench{uuid.uuid4().hex[:6]}-docs",
            search_nudge="notify",
            db_pool_max=8,
            rate_limit_enabled=False,
        )
        try:
            if phase == "lag":
                results["lag"] = lag_phase(settings, args.rate, args.seconds, args.writers)
            else:
                results["backfill"] = backfill_phase(settings, args.docs)
        finally:
            from tests.conftest import drop_search_indexes

            drop_search_indexes(url, settings.search_alias)
            drop_database(db)
    if server is not None:
        server.close()
    lag, fill = results["lag"], results["backfill"]
    print(f"sync lag at {lag['achieved_rate']}/s ({lag['writes']} writes):")
    print(f"  acknowledged p50/p90/p99 ms: {lag['acked_lag_ms']}  (n={lag['acked_n']})")
    print(f"  searchable   p50/p90/p99 ms: {lag['searchable_lag_ms']}  (n={lag['searchable_n']})")
    print(f"  target p99 <= 1000 ms: {'PASS' if lag['pass'] else 'FAIL'}")
    print(f"backfill: {fill['docs']} docs in {fill['seconds']} s = {fill['docs_per_s']} docs/s")
    results["date"] = time.strftime("%Y-%m-%d")
    results["machine"] = f"{platform.machine()} {os.cpu_count()} cpus"
    print(json.dumps(results))  # the last line, read by benchmarks.run


if __name__ == "__main__":
    main()
