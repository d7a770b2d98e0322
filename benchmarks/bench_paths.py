"""Latency of the search, list and batch handler paths next to bare baselines.

    .venv/bin/python -m benchmarks.bench_paths [--n 300] [--rounds 5]

The companion of ``bench_api`` (GET hit, GET miss, write) for the other
handler paths, measured the same way: ``app.handler`` invoked with API
Gateway proxy events, API and baseline samples in alternating blocks.

- search (``POST /search``)  vs a raw opensearch-py ``search`` of the very query
  body the service builds (``build_query``), on the same alias;
- list, cache miss (``GET /documents?limit=20`` after the org's list generation
  moved) vs a psycopg select of the same page (20 rows, same order) + a redis SET;
- list, cache hit vs a redis GET of the cached page;
- batch (``POST /documents:batch``, 10 documents) vs 10 psycopg transactions, each
  inserting a document, its version row and its outbox row (the service commits
  each item on its own).

OpenSearch: OPENSEARCH_URL when set, else the in-memory server.  PostgreSQL
and Redis as in ``bench_api`` (private database and key prefix, removed at the
end).  Prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
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

from benchmarks.bench_api import (
    DOCUMENT,
    ORG,
    REDIS_URL,
    bench_settings,
    create_database,
    delete_prefix,
    drop_database,
    measure,
    summary,
)
from chalicelib import bootstrap
from chalicelib.api.auth import mint_token
from chalicelib.domain.principal import Principal
from chalicelib.domain.search import build_query, parse_search_request
from chalicelib.domain.viewer import Viewer
from devtools.events import LambdaContext, api_gateway_event

BATCH = 10
PAGE = 20
SEARCH = {"q": "benchmark lorem", "size": 10}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=300, help="timed calls per path")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--docs", type=int, default=300, help="documents seeded")
    args = parser.parse_args()

    import app

    server = None
    url = os.environ.get("OPENSEARCH_URL")
    if not url:
        from osmem_server import OsmemServer

        server = OsmemServer.start(japanese=False)
        url = server.url
    database_url = create_database()
    prefix = f"bench:{uuid.uuid4().hex[:10]}:"
    alias = f"bench{uuid.uuid4().hex[:6]}-docs"
    settings = bench_settings(database_url, prefix, opensearch_url=url, search_alias=alias)
    container = bootstrap.build(settings)
    bootstrap.set_container(container)
    token = mint_token(settings, org=ORG, sub="bencher", roles=["writer"])
    resources = tuple(app.app.routes)
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    raw_redis: redis.Redis[bytes] = redis.Redis.from_url(REDIS_URL)
    pg = psycopg.connect(database_url, autocommit=True, prepare_threshold=None)
    started = time.perf_counter()
    report: dict[str, Any] = {
        "bench": "paths",
        "opensearch": "env" if server is None else "in-memory",
    }

    def event(method: str, path: str, body: Any = None) -> dict[str, Any]:
        data = json.dumps(body).encode() if body is not None else None
        built = api_gateway_event(resources, method, path, headers=headers, body=data)
        assert built is not None, path
        return built

    def invoke(built: dict[str, Any]) -> dict[str, Any]:
        result: dict[str, Any] = app.handler(built, LambdaContext.new())
        return result

    try:
        who = Principal("bencher", ORG, frozenset({"writer"}))
        for i in range(args.docs):
            container.documents.create(who, {**DOCUMENT, "title": f"Benchmark document {i}"})
        container.search_sync.reindex()
        container.search_index.refresh()

        # --- search vs raw opensearch-py search of the same body -------------------
        # the same body the service sends for this caller (its ACL filter included)
        viewer = Viewer("bencher", admin=False)
        body = build_query(ORG, parse_search_request(SEARCH), None, viewer=viewer)
        client = container.search_index.client

        def api_search(_: int) -> Callable[[], Any]:
            built = event("POST", "/search", SEARCH)

            def call() -> None:
                result = invoke(built)
                assert result["statusCode"] == 200, result
                assert json.loads(result["body"])["hits"], result

            return call

        def base_search(_: int) -> Callable[[], Any]:
            return lambda: client.search(index=alias, body=body)

        s_api, s_base = measure(args.n, 30, args.rounds, api_search, base_search)

        # --- list: miss (generation moved) vs PG page select + redis SET; hit vs GET --
        listgen = container.cache._listgen_key(ORG)  # under the key namespace
        select = (
            "SELECT org, id, title, body, tags, metadata, version, owner, created_at, "
            "updated_at FROM documents WHERE org = %s AND deleted_at IS NULL "
            "ORDER BY created_at DESC, id DESC LIMIT %s"
        )
        page_path = f"/documents?limit={PAGE}"
        first = invoke(event("GET", page_path))
        assert first["statusCode"] == 200, first
        page_body = first["body"].encode()
        base_key = container.cache._list_key(ORG, "y" * 64)  # as long as a real page's

        def api_list_miss(_: int) -> Callable[[], Any]:
            raw_redis.incr(listgen)  # untimed: the next list is a miss
            built = event("GET", page_path)

            def call() -> None:
                result = invoke(built)
                assert result["headers"].get("X-Cache") == "miss", result["headers"]

            return call

        def base_list_miss(_: int) -> Callable[[], Any]:
            def call() -> None:
                rows = pg.execute(select, (ORG, PAGE + 1)).fetchall()
                assert len(rows) == PAGE + 1
                raw_redis.set(base_key, page_body, ex=30)

            return call

        lm_api, lm_base = measure(args.n, 30, args.rounds, api_list_miss, base_list_miss)
        invoke(event("GET", page_path))  # cached again

        def api_list_hit(_: int) -> Callable[[], Any]:
            built = event("GET", page_path)

            def call() -> None:
                result = invoke(built)
                assert result["headers"].get("X-Cache") == "hit", result["headers"]

            return call

        def base_list_hit(_: int) -> Callable[[], Any]:
            return lambda: raw_redis.get(base_key)

        lh_api, lh_base = measure(args.n, 30, args.rounds, api_list_hit, base_list_hit)

        # --- batch of 10 vs 10 PG transactions (document + version + outbox) ---------
        items = [{**DOCUMENT, "title": f"batch {i}"} for i in range(BATCH)]
        n_batch = max(20, args.n // 5)

        def api_batch(_: int) -> Callable[[], Any]:
            built = event("POST", "/documents:batch", {"documents": items})

            def call() -> None:
                result = invoke(built)
                assert result["statusCode"] == 200, result

            return call

        def base_batch(i: int) -> Callable[[], Any]:
            def call() -> None:
                for j, item in enumerate(items):
                    doc_id = f"base-{i}-{j}-{uuid.uuid4().hex[:8]}"
                    with pg.transaction():
                        pg.execute(
                            "INSERT INTO documents (org, id, title, body, tags, metadata, "
                            "version, owner, created_at, updated_at) "
                            "VALUES (%s, %s, %s, %s, %s, %s, 1, %s, now(), now())",
                            (ORG, doc_id, item["title"], Jsonb(item["body"]), item["tags"],
                             Jsonb(item["metadata"]), "bencher"),
                        )  # fmt: skip
                        pg.execute(
                            "INSERT INTO document_versions (org, id, version, title, body, "
                            "tags, metadata, content, deleted, author, action, created_at) "
                            "VALUES (%s, %s, 1, %s, %s, %s, %s, NULL, false, %s, 'create', now())",
                            (ORG, doc_id, item["title"], Jsonb(item["body"]), item["tags"],
                             Jsonb(item["metadata"]), "bencher"),
                        )  # fmt: skip
                        pg.execute(
                            "INSERT INTO outbox (org, doc_id, version, op) "
                            "VALUES (%s, %s, 1, 'upsert')",
                            (ORG, doc_id),
                        )

            return call

        b_api, b_base = measure(n_batch, 5, args.rounds, api_batch, base_batch)
        report["measure_s"] = round(time.perf_counter() - started, 1)
    finally:
        pg.close()
        container.close()
        bootstrap.set_container(None)
        delete_prefix(raw_redis, prefix)
        drop_database(database_url)
        raw_redis.close()
        from tests.conftest import drop_search_indexes

        drop_search_indexes(url, alias)
        if server is not None:
            server.close()

    rows = (
        ("search", "POST /search", s_api, "opensearch-py search, same body", s_base),
        ("list_miss", "GET /documents (miss)", lm_api, "PG page select + redis SET", lm_base),
        ("list_hit", "GET /documents (hit)", lh_api, "redis GET of the page", lh_base),
        ("batch", f"POST /documents:batch ({BATCH})", b_api, f"{BATCH} PG txns doc+ver+outbox",
         b_base),
    )  # fmt: skip
    for key, name, api_ns, base_name, base_ns in rows:
        api, base = summary(api_ns), summary(base_ns)
        report[key] = {
            "name": name,
            "api": api,
            "baseline": {"name": base_name, **base},
            "ratio_p50": round(api["p50_ms"] / base["p50_ms"], 3),
        }
        print(
            f"{name:<30}{api['p50_ms']:>9.3f}{api['p99_ms']:>9.3f}  {base_name:<34}"
            f"{base['p50_ms']:>9.3f}{base['p99_ms']:>9.3f}{report[key]['ratio_p50']:>7.2f}x"
        )
    print(json.dumps(report))


if __name__ == "__main__":
    main()
