"""Where the time of a GET miss and a write goes, layer by layer.

    .venv/bin/python -m benchmarks.bench_breakdown [--n 400] [--rounds 4]

Times each layer of the two paths on its own (p50 of wall time, and the
process's CPU time per call, which a loaded machine inflates far less than
wall time: it is the Python and the client libraries, not the waits), in
interleaved rounds like ``bench_api``, on a private database and key prefix
(removed at the end).  ``docs/benchmarks.md`` ("Where the time goes") lists
what it printed before and after the changes made for the targets.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import pstats
import statistics
import time
from collections.abc import Callable
from typing import Any

from benchmarks.bench_api import (
    DOCUMENT,
    ORG,
    bench_stack,
    delete_prefix,
    drop_database,
)
from chalicelib import bootstrap
from chalicelib.adapters.redis.cache import RedisCache
from chalicelib.domain.principal import Principal
from devtools.events import LambdaContext, api_gateway_event

Probe = Callable[[int], Callable[[], Any]]


def run(probes: dict[str, Probe], n: int, rounds: int) -> dict[str, tuple[float, float]]:
    """p50 wall ms and mean CPU ms per call of each probe, interleaved in rounds."""
    wall: dict[str, list[int]] = {k: [] for k in probes}
    cpu: dict[str, list[int]] = {k: [] for k in probes}
    for probe in probes.values():  # warm-up
        for i in range(30):
            probe(i)()
    i = 1000
    for _ in range(rounds):
        for name, probe in probes.items():
            for j in range(n // rounds):
                call = probe(i + j)
                c0, w0 = time.thread_time_ns(), time.perf_counter_ns()
                call()
                wall[name].append(time.perf_counter_ns() - w0)
                cpu[name].append(time.thread_time_ns() - c0)
        i += n
    return {k: (statistics.median(wall[k]) / 1e6, statistics.fmean(cpu[k]) / 1e6) for k in probes}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=400)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument(
        "--cpu-profile", choices=["miss", "write"], action="append", default=[],
        help="cProfile a path with a CPU-time clock (waits excluded), own time",
    )  # fmt: skip
    args = parser.parse_args()

    import psycopg
    import redis
    from psycopg.types.json import Jsonb

    import app
    from benchmarks.bench_api import REDIS_URL

    database_url, prefix, container, token = bench_stack()
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    resources = tuple(app.app.routes)
    raw: redis.Redis[bytes] = redis.Redis.from_url(REDIS_URL)
    pg = psycopg.connect(database_url, autocommit=True, prepare_threshold=None)
    who = Principal(org=ORG, sub="bencher", roles=frozenset({"writer"}))
    docs = container.documents
    uow, cache = docs.uow, container.cache
    assert isinstance(cache, RedisCache)

    def event(method: str, path: str, body: Any = None, **extra: str) -> dict[str, Any]:
        data = json.dumps(body).encode() if body is not None else None
        built = api_gateway_event(resources, method, path, headers={**headers, **extra}, body=data)
        assert built is not None
        return built

    try:
        create = event("POST", "/documents", DOCUMENT)
        made = [json.loads(app.handler(create, LambdaContext.new())["body"]) for _ in "ABCD"]
        read_id, write_id, svc_write_id, base_id = (d["id"] for d in made)
        doc_key = cache._doc_key(ORG, read_id)
        etag_key = cache._etag_key(ORG, read_id)
        payload = b"x" * 1100
        current = uow.read_document(ORG, read_id)
        assert current is not None
        entry_doc = current

        def forget() -> None:
            raw.delete(doc_key, etag_key)

        def miss_handler(_: int) -> Callable[[], Any]:
            forget()
            built, ctx = event("GET", f"/documents/{read_id}"), LambdaContext.new()
            return lambda: app.handler(built, ctx)

        def miss_service(_: int) -> Callable[[], Any]:
            forget()
            return lambda: docs.get(who, read_id)

        from chalicelib.service_layer.cache_coherence import cache_entry

        def fill(_: int) -> Callable[[], Any]:
            forget()
            return lambda: cache.put_if_newer(ORG, read_id, cache_entry(entry_doc))

        hit_event = event("GET", f"/documents/{read_id}")
        app.handler(hit_event, LambdaContext.new())  # fills the cache
        probes_hit: dict[str, Probe] = {
            "handler: GET hit": lambda _: lambda: app.handler(hit_event, LambdaContext.new()),
            "bare: redis GET (the hit's payload)": lambda _: lambda: raw.get(doc_key),
        }
        results = run(probes_hit, args.n, args.rounds)
        probes_miss: dict[str, Probe] = {
            "handler: GET miss": miss_handler,
            "DocumentService.get (miss)": miss_service,
            "uow.read_document": lambda _: lambda: uow.read_document(ORG, read_id),
            "cache.get (a miss)": lambda _: lambda: cache.get(ORG, read_id + "x"),
            "cache.put_if_newer (fill)": fill,
            "cache_entry(doc) (render)": lambda _: lambda: cache_entry(entry_doc),
            "bare: PG select": lambda _: (
                lambda: pg.execute(
                    "SELECT * FROM documents WHERE org = %s AND id = %s", (ORG, read_id)
                ).fetchone()
            ),
            "bare: redis GET": lambda _: lambda: raw.get(doc_key + "x"),
            "bare: redis SET": lambda _: lambda: raw.set(doc_key + "y", payload, px=300_000),
        }
        state = {"etag": made[1]["etag"], "v": made[3]["version"], "svc": made[2]["etag"]}

        def write_handler(i: int) -> Callable[[], Any]:
            patch = [{"op": "replace", "path": "/title", "value": f"t {i}"}]
            built = event(
                "POST", f"/documents/{write_id}/changes", patch,
                **{"Content-Type": "application/json-patch+json", "If-Match": state["etag"]},
            )  # fmt: skip
            ctx = LambdaContext.new()

            def call() -> None:
                out = app.handler(built, ctx)
                assert out["statusCode"] == 200, out
                state["etag"] = out["headers"]["ETag"]

            return call

        def write_service(i: int) -> Callable[[], Any]:
            patch = [{"op": "replace", "path": "/title", "value": f"t {i}"}]

            def call() -> None:
                doc = docs.change(
                    who, svc_write_id, "application/json-patch+json", patch, if_match=state["svc"]
                )
                state["svc"] = doc.etag

            return call

        def bare_write(audit: bool) -> Probe:
            def probe(i: int) -> Callable[[], Any]:
                def call() -> None:
                    v = state["v"]
                    with pg.transaction():
                        pg.execute(
                            "UPDATE documents SET title = %s, body = %s, version = %s, "
                            "updated_at = now() WHERE org = %s AND id = %s AND version = %s",
                            (f"t {i}", Jsonb(DOCUMENT["body"]), v + 1, ORG, base_id, v),
                        )
                        pg.execute(
                            "INSERT INTO document_versions (org, id, version, title, body, tags, "
                            "metadata, content, deleted, author, action, created_at) VALUES "
                            "(%s, %s, %s, %s, %s, %s, %s, NULL, false, 'b', 'change', now())",
                            (ORG, base_id, v + 1, f"t {i}", Jsonb(DOCUMENT["body"]),
                             DOCUMENT["tags"], Jsonb(DOCUMENT["metadata"])),
                        )  # fmt: skip
                        pg.execute(
                            "INSERT INTO outbox (org, doc_id, version, op) "
                            "VALUES (%s, %s, %s, 'upsert')",
                            (ORG, base_id, v + 1),
                        )
                        if audit:
                            pg.execute(
                                "INSERT INTO audit_log (org, actor, action, doc_id, version, "
                                "prev_version, request_id, details) VALUES "
                                "(%s, 'b', 'change', %s, %s, %s, 'r', '{}'::jsonb)",
                                (ORG, base_id, v + 1, v),
                            )
                    state["v"] = v + 1

                return call

            return probe

        probes_write: dict[str, Probe] = {
            "handler: POST /changes": write_handler,
            "DocumentService.change": write_service,
            "cache.fence": lambda i: lambda: cache.fence(ORG, read_id + "f", 10**6 + i),
            "cache.publish": lambda i: (
                lambda: cache.publish(ORG, read_id + "p", cache_entry(entry_doc))
            ),
            "bare: txn upd+ver+outbox": bare_write(False),
            "bare: txn upd+ver+outbox+audit": bare_write(True),
        }
        for label in args.cpu_profile:
            probe = miss_handler if label == "miss" else write_handler
            prof = cProfile.Profile(time.thread_time)
            for i in range(args.n):
                call = probe(i)
                prof.enable()
                call()
                prof.disable()
            stats = pstats.Stats(prof).strip_dirs()
            print(f"=== CPU profile: {label}, {args.n} calls ===")
            stats.sort_stats("cumulative").print_stats(60)
            stats.sort_stats("tottime").print_stats(40)
        results.update(run(probes_miss, args.n, args.rounds))
        results.update(run(probes_write, args.n, args.rounds))
    finally:
        pg.close()
        container.close()
        bootstrap.set_container(None)
        delete_prefix(raw, prefix)
        drop_database(database_url)
        raw.close()
    print(f"{'layer':<34}{'p50 wall ms':>12}{'CPU ms/call':>12}")
    for name, (w, c) in results.items():
        print(f"{name:<34}{w:>12.3f}{c:>12.3f}")
    print(json.dumps({"bench": "breakdown", "layers": results}))


if __name__ == "__main__":
    main()
