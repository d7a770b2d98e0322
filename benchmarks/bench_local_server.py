"""Latency of the local server under more connections than workers, with wrk.

    .venv/bin/python -m benchmarks.bench_local_server [--tree DIR ...] [--connections 1 4 8 16]

Starts ``python -m devtools.cli serve --workers 4`` from each ``--tree`` (a
checkout; default this one) on a private database and key prefix, seeds 1000
documents of about 2 KB, and drives each with wrk (one connection per thread):

- *get*: GET a random document by id;
- *rmw*: read-modify-write, a GET then a PATCH (merge patch) with ``If-Match``;
  wrk counts both requests, so p50/p99 are per request.

Each (workload, connections) pair runs ``--rounds`` times, the trees
alternating; prints one line per run and a JSON summary with the load average.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

from benchmarks.bench_api import REDIS_URL, create_database, delete_prefix, drop_database
from benchmarks.bench_http import (
    DOCS,
    LUA_COMMON,
    TEXT,
    WRKJSON,
    Client,
    free_port,
    run_wrk,
    stop,
    wait_http,
)

ROOT = Path(__file__).resolve().parents[1]
WORK = ROOT / "var" / "bench-local"
LUA_GET = LUA_COMMON + "request = random_get\n"
LUA_RMW = (
    LUA_COMMON
    + r"""
local pending = nil
request = function()
  if pending == nil then return random_get() end
  local p = pending
  pending = nil
  n = n + 1
  local h = headers({["If-Match"] = p.rev, ["Content-Type"] = "application/merge-patch+json"})
  return wrk.format("PATCH", prefix .. p.id, h, '{"title":"t' .. n .. '"}')
end
local was_get = true
response = function(status, hdrs, body)
  if was_get and status == 200 then
    local id = body:match('"id":"([^"]+)"')
    local etag = hdrs["ETag"] or hdrs["etag"] or hdrs["Etag"]
    if id and etag then pending = {id = id, rev = etag} end
  end
  was_get = pending ~= nil
end
"""
)


def start(tree: Path, env: dict[str, str], workers: int, log: Path) -> tuple[Any, int]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "devtools.cli", "serve", "--host", "127.0.0.1",
         "--port", str(port), "--workers", str(workers)],
        cwd=tree, env={**env, "DOCS_LOCAL_STATE_FILE": str(WORK / f"state-{port}.json")},
        stdout=log.open("wb"), stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    wait_http(port, "/health")
    return proc, port


def seed(port: int, token: str, ids_file: Path) -> None:
    """The same 1000 documents of ~2 KB; their ids, one a line, in ``ids_file``."""
    client = Client(port, token)
    ids: list[str] = []
    for first in range(0, DOCS, 100):
        docs = [{"title": f"doc {i}", "body": {"text": TEXT}} for i in range(first, first + 100)]
        status, _, body = client.call("POST", "/documents:batch", {"documents": docs})
        assert status == 200, (status, body)
        ids += [r["id"] for r in body["results"]]
    ids_file.write_text("\n".join(ids) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tree", type=Path, action="append", help="a checkout to serve from")
    parser.add_argument("--connections", type=int, nargs="+", default=[1, 4, 8, 16])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--workers", type=int, default=4)
    args = parser.parse_args()
    trees = [t.resolve() for t in (args.tree or [ROOT])]

    from chalicelib.api.auth import mint_token
    from chalicelib.config import Settings

    WORK.mkdir(parents=True, exist_ok=True)
    lua_text = TEXT.replace('"', "")
    scripts = {"get": WORK / "get.lua", "rmw": WORK / "rmw.lua"}
    for name, text in (("get", LUA_GET), ("rmw", LUA_RMW)):
        scripts[name].write_text(text.replace("__TEXT__", lua_text).replace("__MARK__", WRKJSON))
    secret = secrets.token_urlsafe(32)
    base_env = {
        **os.environ,
        "REDIS_URL": REDIS_URL,
        "DOCS_JWT_SECRET": secret,
        "DOCS_RATE_LIMIT_READER": "[1000000000, 1000000000]",
        "DOCS_RATE_LIMIT_WRITER": "[1000000000, 1000000000]",
        "POWERTOOLS_METRICS_DISABLED": "true",
        "POWERTOOLS_TRACE_DISABLED": "true",
    }
    token = mint_token(Settings(jwt_secret=secret), org="bench", sub="bencher", roles=["writer"])
    # each tree its own database and key prefix (one search sync per database)
    stacks = [(create_database(), f"bench:{uuid.uuid4().hex[:10]}:") for _ in trees]
    servers: list[tuple[Any, int]] = []
    results: list[dict[str, Any]] = []
    try:
        for i, (tree, (database_url, prefix)) in enumerate(zip(trees, stacks, strict=True)):
            env = {**base_env, "DATABASE_URL": database_url, "DOCS_REDIS_KEY_PREFIX": prefix}
            servers.append(start(tree, env, args.workers, WORK / f"serve-{i}.log"))
            seed(servers[-1][1], token, WORK / f"ids-{i}")

        def wargs(i: int) -> list[str]:
            return [str(WORK / f"ids-{i}"), "/documents/", "ours", token]

        for i, (_, port) in enumerate(servers):  # warm every worker
            run_wrk(scripts["get"], f"http://127.0.0.1:{port}", wargs(i), 4, 2)
        for workload in ("get", "rmw"):
            for conns in args.connections:
                for rnd in range(args.rounds):
                    order = list(enumerate(servers))
                    if rnd % 2:
                        order.reverse()
                    for i, (_, port) in order:
                        url = f"http://127.0.0.1:{port}"
                        data = run_wrk(scripts[workload], url, wargs(i), conns, args.seconds)
                        row = {
                            "tree": str(trees[i]),
                            "workload": workload,
                            "connections": conns,
                            "rps": round(data["rps"]),
                            "p50_ms": data["p50_us"] / 1000,
                            "p99_ms": data["p99_us"] / 1000,
                            "errors": data["non2xx"] + data["timeout"] + data["read"],
                            "loadavg": [round(x, 2) for x in os.getloadavg()],
                        }
                        results.append(row)
                        print(json.dumps(row), flush=True)
    finally:
        for proc, _ in servers:
            stop(proc)
        import redis

        for database_url, prefix in stacks:
            drop_database(database_url)
            delete_prefix(redis.Redis.from_url(REDIS_URL), prefix)
    print(json.dumps({"bench": "local_server", "runs": results}))


if __name__ == "__main__":
    main()
