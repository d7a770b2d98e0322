"""Latency of the API's hot paths next to bare baselines measured in the same run.

    .venv/bin/python -m benchmarks.bench_api [--hits 3000] [--misses 800] [--writes 800]

Each API figure invokes the Lambda handler (``app.handler``) with an API
Gateway proxy event, exactly as Lambda would; each baseline does the least
work that path needs with the raw clients:

- GET hit   vs  one Redis GET of the same cached payload;
- GET miss  vs  a PostgreSQL point select of the row + a Redis SET;
- POST /changes vs a PostgreSQL transaction: conditional UPDATE + version
  INSERT + outbox INSERT.

Runs on the machine's PostgreSQL/Redis (DATABASE_URL / REDIS_URL) in a
private database and key prefix, both removed at the end.  Prints a table and
one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
import uuid
from collections.abc import Callable
from typing import Any

os.environ.setdefault("POWERTOOLS_TRACE_DISABLED", "true")
os.environ.setdefault("POWERTOOLS_METRICS_DISABLED", "true")
os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "WARNING")

import psycopg
import redis
from psycopg.types.json import Jsonb

from chalicelib import bootstrap
from chalicelib.config import Settings
from chalicelib.local.events import LambdaContext, api_gateway_event
from tests.conftest import JWT_SECRET, REDIS_URL, create_database, drop_database, make_token

UNLIMITED = (1e9, 10**9)


def percentiles(samples_ns: list[int]) -> dict[str, float]:
    ordered = sorted(samples_ns)
    return {
        "p50_ms": ordered[len(ordered) // 2] / 1e6,
        "p99_ms": ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] / 1e6,
        "mean_ms": statistics.fmean(ordered) / 1e6,
    }


def timed(n: int, fn: Callable[[int], Any], warmup: int = 100) -> list[int]:
    for i in range(warmup):
        fn(i)
    out = []
    for i in range(n):
        start = time.perf_counter_ns()
        fn(i)
        out.append(time.perf_counter_ns() - start)
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--hits", type=int, default=3000)
    parser.add_argument("--misses", type=int, default=800)
    parser.add_argument("--writes", type=int, default=800)
    args = parser.parse_args()

    import app

    database_url = create_database()
    prefix = f"bench:{uuid.uuid4().hex[:8]}:"
    settings = Settings(
        database_url=database_url,
        redis_url=REDIS_URL,
        redis_key_prefix=prefix,
        jwt_secret=JWT_SECRET,
        rate_limit_reader=UNLIMITED,
        rate_limit_writer=UNLIMITED,
        rate_limit_admin=UNLIMITED,
    )
    container = bootstrap.build(settings)
    bootstrap.set_container(container)
    raw_redis = redis.Redis.from_url(REDIS_URL)
    resources = tuple(app.app.routes)
    headers = {
        "Authorization": f"Bearer {make_token(org='bench')}",
        "Content-Type": "application/json",
    }
    ctx = LambdaContext.new()
    body = {
        "title": "Benchmark document",
        "body": {"text": "lorem ipsum " * 80},
        "tags": ["a", "b"],
    }

    def call(
        method: str, path: str, payload: Any = None, extra: dict[str, str] | None = None
    ) -> dict[str, Any]:
        data = json.dumps(payload).encode() if payload is not None else None
        event = api_gateway_event(
            resources, method, path, headers={**headers, **(extra or {})}, body=data
        )
        result: dict[str, Any] = app.handler(event, ctx)
        return result

    try:
        created = json.loads(call("POST", "/documents", body)["body"])
        doc_id = created["id"]
        doc_key = f"{prefix}doc:bench:{doc_id}"
        hit_event = api_gateway_event(resources, "GET", f"/documents/{doc_id}", headers=headers)

        # --- GET hit vs Redis GET ---------------------------------------------
        def api_hit(_: int) -> None:
            result = app.handler(hit_event, ctx)
            assert result["headers"]["X-Cache"] == "hit", result["headers"]

        api_hit_ns = timed(args.hits, api_hit)
        base_get_ns = timed(args.hits, lambda _: raw_redis.get(doc_key))

        # --- GET miss vs PG point select + Redis SET ---------------------------------
        miss_samples: list[int] = []
        for i in range(args.misses + 50):
            raw_redis.delete(doc_key, doc_key + ":etag")  # eviction is not part of the timing
            start = time.perf_counter_ns()
            result = app.handler(hit_event, ctx)
            elapsed = time.perf_counter_ns() - start
            assert result["headers"]["X-Cache"] == "miss"
            if i >= 50:
                miss_samples.append(elapsed)

        pg = psycopg.connect(database_url, autocommit=False, prepare_threshold=None)
        payload = raw_redis.get(doc_key) or b"x" * 1200

        def base_miss(_: int) -> None:
            with pg.transaction():
                pg.execute(
                    "SELECT org, id, title, body, tags, metadata, version, owner, created_at, "
                    "updated_at, deleted_at, content FROM documents WHERE org = %s AND id = %s",
                    ("bench", doc_id),
                ).fetchone()
            raw_redis.set(doc_key + ":baseline", payload, px=300_000)

        base_miss_ns = timed(args.misses, base_miss, warmup=50)

        # --- POST /changes vs PG transaction (update + version + outbox) ---------------
        etag = json.loads(call("GET", f"/documents/{doc_id}")["body"])["etag"]
        state = {"etag": etag}

        def api_write(i: int) -> None:
            result = call(
                "POST",
                f"/documents/{doc_id}/changes",
                [{"op": "replace", "path": "/title", "value": f"title {i}"}],
                {"Content-Type": "application/json-patch+json", "If-Match": state["etag"]},
            )
            assert result["statusCode"] == 200, result["body"]
            state["etag"] = result["headers"]["ETag"]

        api_write_ns = timed(args.writes, api_write, warmup=50)

        other = json.loads(call("POST", "/documents", body)["body"])["id"]
        version = {"v": 1}

        def base_write(_: int) -> None:
            v = version["v"]
            with pg.transaction():
                pg.execute(
                    "UPDATE documents SET title = %s, version = %s, updated_at = now() "
                    "WHERE org = %s AND id = %s AND version = %s",
                    (f"t{v}", v + 1, "bench", other, v),
                )
                pg.execute(
                    "INSERT INTO document_versions (org, id, version, title, body, tags, "
                    "metadata, author, action, created_at) "
                    "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, now())",
                    (
                        "bench",
                        other,
                        v + 1,
                        f"t{v}",
                        Jsonb(body["body"]),
                        ["a"],
                        Jsonb({}),
                        "b",
                        "x",
                    ),
                )
                pg.execute(
                    "INSERT INTO outbox (org, doc_id, version, op) VALUES (%s, %s, %s, 'upsert')",
                    ("bench", other, v + 1),
                )
            version["v"] = v + 1

        base_write_ns = timed(args.writes, base_write, warmup=50)
        pg.close()
    finally:
        container.close()
        bootstrap.set_container(None)
        for key in raw_redis.scan_iter(match=f"{prefix}*"):
            raw_redis.delete(key)
        drop_database(database_url)

    rows = [
        ("GET hit", percentiles(api_hit_ns), "redis GET", percentiles(base_get_ns), 3.0),
        (
            "GET miss",
            percentiles(miss_samples),
            "PG select + redis SET",
            percentiles(base_miss_ns),
            2.0,
        ),
        (
            "POST /changes",
            percentiles(api_write_ns),
            "PG txn (update+version+outbox)",
            percentiles(base_write_ns),
            2.0,
        ),
    ]
    print(
        f"{'path':<15}{'p50 ms':>9}{'p99 ms':>9}   {'baseline':<32}"
        f"{'p50 ms':>9}{'p99 ms':>9}{'ratio p50':>11}{'target':>8}"
    )
    report: dict[str, Any] = {}
    for name, api, base_name, base, target in rows:
        ratio = api["p50_ms"] / base["p50_ms"]
        print(
            f"{name:<15}{api['p50_ms']:>9.3f}{api['p99_ms']:>9.3f}   {base_name:<32}"
            f"{base['p50_ms']:>9.3f}{base['p99_ms']:>9.3f}{ratio:>10.2f}x{target:>7.1f}x"
        )
        report[name] = {
            "api": api,
            "baseline": base,
            "ratio_p50": round(ratio, 3),
            "target": target,
        }
    print(json.dumps({"bench": "api", **report}))


if __name__ == "__main__":
    main()
