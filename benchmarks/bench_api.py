"""Latency of the API's hot paths next to bare baselines measured in the same run.

    .venv/bin/python -m benchmarks.bench_api [--hits 2000] [--misses 500] [--writes 500]
                                             [--rounds 5] [--profile hit|miss|write]

Each API figure invokes the Lambda handler (``app.handler(event,
LambdaContext.new())``) with an API Gateway proxy event built by
``devtools.events.api_gateway_event``, as Lambda would; each baseline
does the least work that path needs, with the raw clients:

- GET hit       vs (a) one redis-py GET of the same cached payload (same key);
- GET miss      vs (b) a psycopg point select of the same row (autocommit,
                   ``prepare_threshold=None``) + a redis-py SET of the same payload;
- POST /changes vs (c) a psycopg transaction doing the same rows: conditional
                   UPDATE of the row + INSERT into document_versions, outbox
                   and audit_log (the audit table's own triggers run for both).

API and baseline samples are taken in interleaved rounds (API block, then
baseline block, ``--rounds`` times), so a noisy neighbour hits both alike.
Building the event and ``LambdaContext.new()`` (API Gateway's and the Lambda
runtime's work, not the function's) and, for misses, deleting the cache key
happen before the timer starts.

Runs on the machine's PostgreSQL/Redis (DATABASE_URL / REDIS_URL) in a private
database ``docs_bench_<random>`` and a private Redis key prefix
``bench:<random>:``; both are removed at the end (Redis is never flushed, no
other database is touched).  Prints a table, the targets, and one JSON line.
``--profile`` additionally runs cProfile over one API path and prints the top
functions (not part of the timed figures).
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import platform
import pstats
import secrets
import statistics
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit, urlunsplit

# Before importing app: no X-Ray, no EMF lines on stdout, no per-request logs.
os.environ.setdefault("POWERTOOLS_TRACE_DISABLED", "true")
os.environ.setdefault("POWERTOOLS_METRICS_DISABLED", "true")
os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "WARNING")

import psycopg
import redis
from psycopg.types.json import Jsonb

from chalicelib import bootstrap
from chalicelib.adapters.postgres import migrate
from chalicelib.api.auth import mint_token
from chalicelib.config import Settings
from chalicelib.domain.keys import join_key
from devtools.events import LambdaContext, api_gateway_event

ADMIN_DATABASE_URL = os.environ.get("DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
ORG = "bench"
# High enough never to answer 429 during the run; the limiter still runs (leases included).
UNLIMITED = (1e9, 10**9)
HIT_P50_LIMIT_MS = 1.0
TARGETS = {"hit": 3.0, "miss": 2.0, "write": 2.0}
DOC_COLUMNS = (
    "org, id, title, body, tags, metadata, version, owner, created_at, updated_at, "
    "deleted_at, content"
)
DOCUMENT = {
    "title": "Benchmark document",
    "body": {"text": "lorem ipsum " * 80, "n": 1, "nested": {"a": [1, 2, 3]}},
    "tags": ["bench", "latency"],
    "metadata": {"source": "benchmarks.bench_api"},
}


# ------------------------------------------------------------------ isolation
def _database_url(name: str) -> str:
    parts = urlsplit(ADMIN_DATABASE_URL)
    return urlunsplit((parts.scheme, parts.netloc, f"/{name}", parts.query, parts.fragment))


def create_database() -> str:
    """A fresh, migrated private database; returns its URL."""
    name = f"docs_bench_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(ADMIN_DATABASE_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = _database_url(name)
    migrate(url, runtime_user=Settings(database_url=url).runtime_user)
    return url


def drop_database(url: str) -> None:
    name = urlsplit(url).path.lstrip("/")
    assert name.startswith("docs_bench_"), name  # never anything but our own
    with psycopg.connect(ADMIN_DATABASE_URL, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def delete_prefix(client: redis.Redis[bytes], prefix: str) -> int:
    assert prefix.startswith("bench:"), prefix
    deleted = 0
    for key in client.scan_iter(match=f"{prefix}*", count=500):
        deleted += client.delete(key)
    return deleted


# ------------------------------------------------------------------ statistics
def bench_settings(database_url: str, prefix: str, **extra: Any) -> Settings:
    """The service's settings for a benchmark: its own database and key prefix, a
    throwaway signing secret, and no rate limit in the way of the measured loop."""
    return Settings(
        database_url=database_url,
        redis_url=REDIS_URL,
        redis_key_prefix=prefix,
        jwt_secret=secrets.token_urlsafe(32),
        rate_limit_reader=UNLIMITED,
        rate_limit_writer=UNLIMITED,
        rate_limit_admin=UNLIMITED,
        **extra,
    )


def bench_stack() -> tuple[str, str, Any, str]:
    """A private database and key prefix, the real container over them installed as
    the app's, and a writer's token: (database_url, prefix, container, token).
    The caller closes the container and removes the database and prefix."""
    database_url = create_database()
    prefix = f"bench:{uuid.uuid4().hex[:10]}:"
    settings = bench_settings(database_url, prefix)
    container = bootstrap.build(settings)
    bootstrap.set_container(container)
    token = mint_token(settings, org=ORG, sub="bencher", roles=["writer"])
    return database_url, prefix, container, token


def percentile(ordered: list[int], q: float) -> float:
    """Nearest-rank percentile of sorted nanosecond samples, in ms."""
    index = min(len(ordered) - 1, max(0, round(q * len(ordered) + 0.5) - 1))
    return ordered[index] / 1e6


def summary(samples_ns: list[int]) -> dict[str, float]:
    ordered = sorted(samples_ns)
    return {
        "n": len(ordered),
        "p50_ms": round(percentile(ordered, 0.50), 4),
        "p90_ms": round(percentile(ordered, 0.90), 4),
        "p99_ms": round(percentile(ordered, 0.99), 4),
        "mean_ms": round(statistics.fmean(ordered) / 1e6, 4),
        "min_ms": round(ordered[0] / 1e6, 4),
    }


Step = Callable[[int], Callable[[], Any]]
"""Untimed preparation for iteration i, returning the timed call."""


def measure(n: int, warmup: int, rounds: int, api: Step, base: Step) -> tuple[list[int], list[int]]:
    """Warm both up, then alternate API and baseline blocks; returns their samples."""
    for i in range(warmup):
        api(i)()
        base(i)()
    api_ns: list[int] = []
    base_ns: list[int] = []
    per_round = max(1, n // rounds)
    i = warmup
    while len(api_ns) < n:
        block = min(per_round, n - len(api_ns))
        for out, step in ((api_ns, api), (base_ns, base)):
            for j in range(block):
                call = step(i + j)
                start = time.perf_counter_ns()
                call()
                out.append(time.perf_counter_ns() - start)
        i += block
    return api_ns, base_ns


def profile(label: str, n: int, step: Step, top: int = 25) -> str:
    """cProfile over ``n`` API calls (preparation excluded as far as possible)."""
    calls = [step(i) for i in range(n)] if label == "hit" else None
    prof = cProfile.Profile()
    if calls is not None:
        prof.enable()
        for call in calls:
            call()
        prof.disable()
    else:  # misses/writes prepare state per call: profile one by one
        for i in range(n):
            call = step(i)
            prof.enable()
            call()
            prof.disable()
    out = io.StringIO()
    stats = pstats.Stats(prof, stream=out).strip_dirs()
    out.write(f"\n=== cProfile: {label}, {n} calls, by cumulative time ===\n")
    stats.sort_stats("cumulative").print_stats(top)
    out.write(f"\n=== cProfile: {label}, {n} calls, by own time ===\n")
    stats.sort_stats("tottime").print_stats(top)
    return out.getvalue()


# ------------------------------------------------------------------ the run
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hits", type=int, default=2000, help="timed GET hits (and baseline a)")
    parser.add_argument("--misses", type=int, default=500, help="timed GET misses (and b)")
    parser.add_argument("--writes", type=int, default=500, help="timed POST /changes (and c)")
    parser.add_argument("--rounds", type=int, default=5, help="API/baseline alternations")
    parser.add_argument("--profile", choices=["hit", "miss", "write"], action="append", default=[])
    parser.add_argument("--profile-calls", type=int, default=1000)
    parser.add_argument("--profile-top", type=int, default=25, help="functions listed per view")
    args = parser.parse_args()

    import app

    started = time.perf_counter()
    database_url, prefix, container, token = bench_stack()
    resources = tuple(app.app.routes)
    base_headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    raw_redis: redis.Redis[bytes] = redis.Redis.from_url(REDIS_URL)
    pg = psycopg.connect(database_url, autocommit=True, prepare_threshold=None)
    profiles: list[str] = []

    def event(method: str, path: str, body: Any = None, **extra: str) -> dict[str, Any]:
        data = json.dumps(body).encode() if body is not None else None
        built = api_gateway_event(
            resources, method, path, headers={**base_headers, **extra}, body=data
        )
        assert built is not None, path
        return built

    def invoke(built: dict[str, Any], context: LambdaContext | None = None) -> dict[str, Any]:
        result: dict[str, Any] = app.handler(built, context or LambdaContext.new())
        return result

    try:
        # Three documents of the same content: A is read (hit/miss and baselines a, b),
        # B is written through the API, C by baseline c.
        created = [json.loads(invoke(event("POST", "/documents", DOCUMENT))["body"]) for _ in "ABC"]
        read_id, write_id, base_write_id = (d["id"] for d in created)
        keys = container.cache.prefix  # the key prefix and the database's id
        doc_key = f"{keys}doc:{join_key(ORG, read_id)}"
        etag_key = f"{keys}etag:{join_key(ORG, read_id)}"
        get_path = f"/documents/{read_id}"
        assert invoke(event("GET", get_path))["headers"]["X-Cache"] in ("hit", "miss")
        payload = raw_redis.get(doc_key)
        assert payload is not None
        assert payload.count(b"\n") >= 2, payload

        # --- GET hit vs (a) redis GET --------------------------------------------
        def api_hit(_: int) -> Callable[[], Any]:
            built, context = event("GET", get_path), LambdaContext.new()

            def call() -> None:
                result = invoke(built, context)
                assert result["headers"].get("X-Cache") == "hit", result

            return call

        def base_hit(_: int) -> Callable[[], Any]:
            return lambda: raw_redis.get(doc_key)

        hit_api, hit_base = measure(args.hits, 200, args.rounds, api_hit, base_hit)

        # --- GET miss vs (b) PG point select + redis SET ----------------------------
        base_key = f"{keys}doc:{join_key(ORG, read_id[:-1] + '~')}"  # same length as the real key
        select = f"SELECT {DOC_COLUMNS} FROM documents WHERE org = %s AND id = %s"

        def api_miss(_: int) -> Callable[[], Any]:
            raw_redis.delete(doc_key, etag_key)  # untimed: force the miss
            built, context = event("GET", get_path), LambdaContext.new()

            def call() -> None:
                result = invoke(built, context)
                assert result["headers"].get("X-Cache") == "miss", result

            return call

        def base_miss(_: int) -> Callable[[], Any]:
            def call() -> None:
                row = pg.execute(select, (ORG, read_id)).fetchone()
                assert row is not None
                raw_redis.set(base_key, payload, px=300_000)

            return call

        miss_api, miss_base = measure(args.misses, 50, args.rounds, api_miss, base_miss)

        # --- POST /changes vs (c) PG txn: update + version, outbox and audit inserts ---
        state = {"etag": created[1]["etag"], "base_version": created[2]["version"]}

        def api_write(i: int) -> Callable[[], Any]:
            patch = [{"op": "replace", "path": "/title", "value": f"title {i}"}]
            built = event(
                "POST",
                f"/documents/{write_id}/changes",
                patch,
                **{"Content-Type": "application/json-patch+json", "If-Match": state["etag"]},
            )
            context = LambdaContext.new()

            def call() -> None:
                result = invoke(built, context)
                assert result["statusCode"] == 200, result
                state["etag"] = result["headers"]["ETag"]

            return call

        def base_write(i: int) -> Callable[[], Any]:
            v = state["base_version"]
            title = f"title {i}"

            def call() -> None:
                with pg.transaction():
                    cur = pg.execute(
                        "UPDATE documents SET title = %s, body = %s, tags = %s, metadata = %s, "
                        "version = %s, updated_at = now() "
                        "WHERE org = %s AND id = %s AND version = %s",
                        (
                            title,
                            Jsonb(DOCUMENT["body"]),
                            DOCUMENT["tags"],
                            Jsonb(DOCUMENT["metadata"]),
                            v + 1,
                            ORG,
                            base_write_id,
                            v,
                        ),
                    )
                    assert cur.rowcount == 1
                    pg.execute(
                        "INSERT INTO document_versions (org, id, version, title, body, tags, "
                        "metadata, content, deleted, author, action, created_at) "
                        "VALUES (%s, %s, %s, %s, %s, %s, %s, NULL, false, %s, 'change', now())",
                        (
                            ORG,
                            base_write_id,
                            v + 1,
                            title,
                            Jsonb(DOCUMENT["body"]),
                            DOCUMENT["tags"],
                            Jsonb(DOCUMENT["metadata"]),
                            "bencher",
                        ),
                    )
                    pg.execute(
                        "INSERT INTO outbox (org, doc_id, version, op) "
                        "VALUES (%s, %s, %s, 'upsert')",
                        (ORG, base_write_id, v + 1),
                    )
                    pg.execute(
                        "INSERT INTO audit_log (org, actor, action, doc_id, version, "
                        "prev_version, request_id, details) "
                        "VALUES (%s, %s, 'change', %s, %s, %s, %s, '{}'::jsonb)",
                        (ORG, "bencher", base_write_id, v + 1, v, f"bench-{i}"),
                    )
                state["base_version"] = v + 1

            return call

        write_api, write_base = measure(args.writes, 50, args.rounds, api_write, base_write)
        elapsed_s = time.perf_counter() - started

        for label in args.profile:
            step = {"hit": api_hit, "miss": api_miss, "write": api_write}[label]
            profiles.append(profile(label, args.profile_calls, step, args.profile_top))
    finally:
        pg.close()
        container.close()
        bootstrap.set_container(None)
        delete_prefix(raw_redis, prefix)
        drop_database(database_url)
        raw_redis.close()

    rows = [
        ("hit", "GET hit", hit_api, "(a) redis GET", hit_base),
        ("miss", "GET miss", miss_api, "(b) PG select + redis SET", miss_base),
        ("write", "POST /changes", write_api, "(c) PG txn upd+ver+outbox+audit", write_base),
    ]
    report: dict[str, Any] = {}
    print(
        f"{'path':<14}{'p50 ms':>8}{'p99 ms':>8}  {'baseline':<27}{'p50 ms':>8}{'p99 ms':>8}"
        f"{'p50 x':>8}{'p99 x':>8}{'target':>12}  result"
    )
    for key, name, api_ns, base_name, base_ns in rows:
        api, base = summary(api_ns), summary(base_ns)
        ratio = api["p50_ms"] / base["p50_ms"]
        ratio_p99 = api["p99_ms"] / base["p99_ms"]
        ok = ratio <= TARGETS[key]
        target = f"<={TARGETS[key]:.0f}x"
        if key == "hit":
            ok = ok and api["p50_ms"] < HIT_P50_LIMIT_MS
            target += ",<1ms"
        print(
            f"{name:<14}{api['p50_ms']:>8.3f}{api['p99_ms']:>8.3f}  {base_name:<27}"
            f"{base['p50_ms']:>8.3f}{base['p99_ms']:>8.3f}{ratio:>7.2f}x{ratio_p99:>7.2f}x"
            f"{target:>12}  {'PASS' if ok else 'FAIL'}"
        )
        report[key] = {
            "api": api,
            "baseline": {"name": base_name, **base},
            "ratio_p50": round(ratio, 3),
            "ratio_p99": round(ratio_p99, 3),
            "target_ratio_p50": TARGETS[key],
            **({"target_p50_ms": HIT_P50_LIMIT_MS} if key == "hit" else {}),
            "pass": ok,
        }
    print(
        "targets: GET hit <= 3x (a) and p50 < 1 ms; GET miss <= 2x (b); POST /changes <= 2x (c)"
        " (ratios are p50/p50)"
    )
    for text in profiles:
        print(text)
    print(
        json.dumps(
            {
                "bench": "api",
                "date": datetime.now(UTC).isoformat(timespec="seconds"),
                "machine": {
                    "cpus": os.cpu_count(),
                    "python": platform.python_version(),
                    "platform": platform.platform(),
                },
                "iterations": {"hits": args.hits, "misses": args.misses, "writes": args.writes},
                "rounds": args.rounds,
                "measure_s": round(elapsed_s, 1),
                **report,
                "all_pass": all(r["pass"] for r in report.values()),
            }
        )
    )


if __name__ == "__main__":
    main()
