"""What the read-through cache buys under a realistic mix, and what Redis down costs.

    .venv/bin/python -m benchmarks.bench_cache_mix [--docs 1000] [--ops 20000] [--warmup 5000]

A 95/5 read/write mix (GET /documents/{id}; PATCH merge-patch with If-Match)
over Zipf(1.1)-distributed document ids, invoking the Lambda handler in
process (``app.handler`` with API Gateway proxy events, as Lambda would), in
four phases on the same private database:

1. cache on, after a warm-up of the same mix: hit ratio (target >= 95 %) and
   PostgreSQL queries per 1000 reads (target <= 100);
2. cache off (``cache_enabled=False``): the same figures, for the >= 10x
   comparison;
3. Redis down (the app points at a port nothing listens on; the breaker
   opens): p50/p99 next to phase 1's.

How PostgreSQL work is counted (two independent measures):

- *round trips*: every ``psycopg.Cursor.execute``/``executemany`` call in this
  process, attributed to the request that made it (a pipelined
  ``BEGIN; SET LOCAL…; SELECT; COMMIT`` is one round trip and counts once; pool
  health checks and the once-a-second cache repair poll count too);
- *transactions*: the server's own ``xact_commit + xact_rollback`` for the
  private database in ``pg_stat_database``, read from another database after
  each phase closes its pool (a backend flushes its statistics when it exits).

Runs on the machine's PostgreSQL/Redis (DATABASE_URL / REDIS_URL) in a private
database and key prefix, both removed at the end (Redis is never flushed).
Prints a table and one JSON line.
"""

from __future__ import annotations

import argparse
import bisect
import itertools
import json
import os
import random
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

os.environ.setdefault("POWERTOOLS_TRACE_DISABLED", "true")
os.environ.setdefault("POWERTOOLS_METRICS_DISABLED", "true")
os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "WARNING")

import psycopg
import redis

from chalicelib import bootstrap
from chalicelib.config import Settings
from devtools.events import LambdaContext, api_gateway_event
from devtools.services import free_port
from tests.conftest import (
    ADMIN_DATABASE_URL,
    JWT_SECRET,
    REDIS_URL,
    create_database,
    delete_prefix,
    drop_database,
    make_token,
)

UNLIMITED = (1e6, 10**6)
ORG = "bench-mix"


# ---------------------------------------------------------------- counting
class RoundTrips:
    """Counts psycopg cursor executions in this process (patched in once)."""

    count = 0

    @classmethod
    def install(cls) -> None:
        for name in ("execute", "executemany"):
            original = getattr(psycopg.Cursor, name)

            def counted(self: Any, *args: Any, _original: Any = original, **kwargs: Any) -> Any:
                cls.count += 1
                return _original(self, *args, **kwargs)

            setattr(psycopg.Cursor, name, counted)


def server_transactions(dbname: str) -> int:
    """xact_commit + xact_rollback of ``dbname`` once none of its backends is left."""
    with psycopg.connect(ADMIN_DATABASE_URL, autocommit=True) as conn:
        for _ in range(100):
            row = conn.execute(
                "SELECT numbackends, xact_commit + xact_rollback FROM pg_stat_database "
                "WHERE datname = %s",
                (dbname,),
            ).fetchone()
            assert row is not None
            if row[0] == 0:
                return int(row[1])
            time.sleep(0.05)
    raise RuntimeError(f"backends of {dbname} did not exit")


# ---------------------------------------------------------------- workload
class Zipf:
    """Ranks 0..n-1 with P(k) proportional to 1/(k+1)^s: a precomputed CDF + bisect."""

    def __init__(self, n: int, s: float, rng: random.Random) -> None:
        self.cdf = list(itertools.accumulate(1.0 / (k + 1) ** s for k in range(n)))
        self.rng = rng

    def __call__(self) -> int:
        return bisect.bisect_left(self.cdf, self.rng.random() * self.cdf[-1])


@dataclass
class Phase:
    name: str
    reads: int = 0
    writes: int = 0
    hits: int = 0
    read_trips: int = 0
    write_trips: int = 0
    xacts: int = 0
    statuses: dict[int, int] = field(default_factory=dict)
    read_ns: list[int] = field(default_factory=list)
    write_ns: list[int] = field(default_factory=list)

    @property
    def hit_ratio(self) -> float:
        return self.hits / self.reads if self.reads else 0.0

    @property
    def trips_per_1k_reads(self) -> float:
        return 1000 * self.read_trips / self.reads if self.reads else 0.0

    @property
    def xacts_per_1k_ops(self) -> float:
        ops = self.reads + self.writes
        return 1000 * self.xacts / ops if ops else 0.0

    def summary(self) -> dict[str, Any]:
        return {
            "reads": self.reads,
            "writes": self.writes,
            "hit_ratio": round(self.hit_ratio, 4),
            "pg_round_trips_per_1k_reads": round(self.trips_per_1k_reads, 1),
            "pg_round_trips_per_write": round(self.write_trips / max(1, self.writes), 2),
            "pg_xacts_per_1k_ops": round(self.xacts_per_1k_ops, 1),
            "read": percentiles(self.read_ns),
            "write": percentiles(self.write_ns),
            "statuses": {str(k): v for k, v in sorted(self.statuses.items())},
        }


def percentiles(samples_ns: list[int]) -> dict[str, float]:
    if not samples_ns:
        return {"p50_ms": 0.0, "p99_ms": 0.0}
    ordered = sorted(samples_ns)
    return {
        "p50_ms": round(ordered[len(ordered) // 2] / 1e6, 3),
        "p99_ms": round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] / 1e6, 3),
    }


class Bench:
    def __init__(self, app: Any, doc_ids: list[str], etags: dict[str, str], seed: int) -> None:
        self.app = app
        self.resources = tuple(app.app.routes)
        self.headers = {
            "Authorization": f"Bearer {make_token(org=ORG, roles=('writer',))}",
            "Content-Type": "application/json",
        }
        self.ctx = LambdaContext.new()
        self.doc_ids = doc_ids
        self.etags = etags  # the latest ETag the (single) client knows
        self.rng = random.Random(seed)
        self.zipf = Zipf(max(1, len(doc_ids)), 1.1, self.rng)

    def call(self, method: str, path: str, body: Any = None, **headers: str) -> dict[str, Any]:
        data = json.dumps(body).encode() if body is not None else None
        event = api_gateway_event(
            self.resources, method, path, headers={**self.headers, **headers}, body=data
        )
        result: dict[str, Any] = self.app.handler(event, self.ctx)
        return result

    def run(self, phase: Phase, ops: int, write_ratio: float) -> Phase:
        for i in range(ops):
            doc = self.doc_ids[self.zipf()]
            write = self.rng.random() < write_ratio
            trips = RoundTrips.count
            start = time.perf_counter_ns()
            if write:
                result = self.call(
                    "PATCH",
                    f"/documents/{doc}",
                    {"title": f"w{i}"},
                    **{"Content-Type": "application/merge-patch+json", "If-Match": self.etags[doc]},
                )
            else:
                result = self.call("GET", f"/documents/{doc}")
            elapsed = time.perf_counter_ns() - start
            status = int(result["statusCode"])
            phase.statuses[status] = phase.statuses.get(status, 0) + 1
            headers = result.get("headers") or {}
            if "ETag" in headers:
                self.etags[doc] = headers["ETag"]
            if write:
                phase.writes += 1
                phase.write_trips += RoundTrips.count - trips
                phase.write_ns.append(elapsed)
            else:
                phase.reads += 1
                phase.read_trips += RoundTrips.count - trips
                phase.read_ns.append(elapsed)
                phase.hits += headers.get("X-Cache") == "hit"
        return phase


def install(settings: Settings) -> bootstrap.Container:
    container = bootstrap.build(settings)
    bootstrap.set_container(container)
    return container


def measured(bench: Bench, settings: Settings, dbname: str, phase: Phase, ops: int) -> Phase:
    """One phase on a fresh container whose pool is closed at the end (flushing PG stats)."""
    before = server_transactions(dbname)
    container = install(settings)
    try:
        bench.run(phase, ops, 0.05)
    finally:
        container.close()
        bootstrap.set_container(None)
    phase.xacts = server_transactions(dbname) - before
    return phase


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--docs", type=int, default=1000)
    parser.add_argument("--ops", type=int, default=20000)
    parser.add_argument("--warmup", type=int, default=5000)
    parser.add_argument("--off-ops", type=int, default=4000)
    parser.add_argument("--down-ops", type=int, default=4000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()

    import app

    RoundTrips.install()
    database_url = create_database()
    dbname = database_url.rsplit("/", 1)[1]
    prefix = f"bench-mix:{uuid.uuid4().hex[:8]}:"
    raw_redis = redis.Redis.from_url(REDIS_URL)
    base = Settings(
        database_url=database_url,
        redis_url=REDIS_URL,
        redis_key_prefix=prefix,
        jwt_secret=JWT_SECRET,
        rate_limit_reader=UNLIMITED,
        rate_limit_writer=UNLIMITED,
        rate_limit_admin=UNLIMITED,
    )
    phases: list[Phase] = []
    try:
        container = install(base)
        bench = Bench(app, [], {}, args.seed)
        for i in range(args.docs):
            result = bench.call("POST", "/documents", {"title": f"doc {i}", "body": {"n": i}})
            assert result["statusCode"] == 201, result
            created = json.loads(result["body"])
            bench.doc_ids.append(created["id"])
            bench.etags[created["id"]] = created["etag"]
        bench.rng.shuffle(bench.doc_ids)  # hot ids are not the first created
        bench.zipf = Zipf(len(bench.doc_ids), 1.1, bench.rng)
        container.close()
        bootstrap.set_container(None)
        delete_prefix(raw_redis, prefix)  # start cold: creation wrote every document through

        warm = measured(bench, base, dbname, Phase("warm-up (cold start)"), args.warmup)
        on = measured(bench, base, dbname, Phase("cache on"), args.ops)
        off_settings = base.model_copy(update={"cache_enabled": False})
        off = measured(bench, off_settings, dbname, Phase("cache off"), args.off_ops)
        dead = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
        down_settings = base.model_copy(update={"redis_url": dead})
        down = measured(bench, down_settings, dbname, Phase("redis down"), args.down_ops)
        phases = [warm, on, off, down]
    finally:
        bootstrap.set_container(None)
        delete_prefix(raw_redis, prefix)
        drop_database(database_url)

    for phase in phases:
        assert set(phase.statuses) <= {200}, (phase.name, phase.statuses)
    print(
        f"{'phase':<22}{'reads':>7}{'writes':>7}{'hit %':>8}{'PG trips/1k reads':>19}"
        f"{'PG xacts/1k ops':>17}{'read p50':>10}{'read p99':>10}{'write p50':>11}"
        f"{'write p99':>11}"
    )
    for p in phases:
        r, w = percentiles(p.read_ns), percentiles(p.write_ns)
        print(
            f"{p.name:<22}{p.reads:>7}{p.writes:>7}{100 * p.hit_ratio:>8.2f}"
            f"{p.trips_per_1k_reads:>19.1f}{p.xacts_per_1k_ops:>17.1f}"
            f"{r['p50_ms']:>10.3f}{r['p99_ms']:>10.3f}{w['p50_ms']:>11.3f}{w['p99_ms']:>11.3f}"
        )
    on, off = phases[1], phases[2]
    reduction = off.trips_per_1k_reads / max(on.trips_per_1k_reads, 1e-9)
    targets = {
        "hit_ratio>=0.95": on.hit_ratio >= 0.95,
        "pg_round_trips_per_1k_reads<=100": on.trips_per_1k_reads <= 100,
        "reduction_vs_cache_off>=10x": reduction >= 10,
    }
    print(
        f"PG round trips per 1000 reads: cache off / cache on = {reduction:.1f}x; "
        + ", ".join(f"{k}: {'met' if v else 'MISSED'}" for k, v in targets.items())
    )
    report = {
        "bench": "cache_mix",
        "docs": args.docs,
        "zipf_s": 1.1,
        "write_ratio": 0.05,
        "phases": {p.name: p.summary() for p in phases},
        "reduction_x": round(reduction, 1),
        "targets_met": targets,
    }
    print(json.dumps(report))


if __name__ == "__main__":
    main()
