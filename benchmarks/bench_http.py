"""HTTP through the local server next to a CouchDB-API peer, run the same way.

    .venv/bin/python -m benchmarks.bench_http [--connections 1 4 8 16] [--seconds 5] [--rounds 2]

Both servers run on this machine, each seeded with the same 1000 documents of
about 2 KB: this service through ``python -m devtools.cli serve`` (the
prefork local server, its default 4 workers, on a private database and key
prefix), the peer as ``pouchdb-server`` in memory (installed by
``scripts/bench.sh`` into ``var/bench/peer``; ``--peer`` names its binary).
A real load tool, ``wrk``, drives both with the same Lua scripts:

- *read by id*: GET a random one of the 1000 documents per request;
- *read-modify-write*: each connection GETs a random document, then PUTs it back
  whole with its revision (``If-Match: <ETag>`` here, ``_rev`` for the peer), and
  again; throughput is complete cycles per second.

Each (workload, connections) pair runs ``--rounds`` times, the two servers
alternating (which one goes first alternates too); the figure is the mean.

Then, with one keep-alive client (``http.client``), the latency of the write
of a read-modify-write, p50: on 100 fresh documents (their first revision),
alternating between the servers, and on one document after ``--revisions``
revisions (the peer keeps every revision in its tree, this service keeps a
version row per revision).

Prints the table and one JSON line.  ``var/bench`` holds the scripts and logs.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from benchmarks.bench_api import REDIS_URL, create_database, delete_prefix, drop_database

ROOT = Path(__file__).resolve().parents[1]
WORK = ROOT / "var" / "bench"
DOCS = 1000
TEXT = ("The quarterly plan, its goals and its risks. " * 46)[:2000]  # ~2 KB a document
WRKJSON = "WRKJSON "

# Shared by both servers: a table of ids, a path prefix and headers come as arguments.
LUA_COMMON = r"""
local ids, prefix, auth, kind = {}, "", nil, "ours"
local text = "__TEXT__"
local n = 0
init = function(args)
  for line in io.lines(args[1]) do ids[#ids + 1] = line end
  prefix, kind = args[2], args[3]
  if args[4] and args[4] ~= "" then auth = "Bearer " .. args[4] end
  math.randomseed(os.time() + tonumber(tostring({}):match("0x(%x+)") or "0", 16) % 100000)
end
local function headers(extra)
  local h = {["Content-Type"] = "application/json"}
  if auth then h["Authorization"] = auth end
  for k, v in pairs(extra or {}) do h[k] = v end
  return h
end
local function random_get()
  return wrk.format("GET", prefix .. ids[math.random(#ids)], headers())
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '__MARK__{"requests":%d,"duration_us":%d,"p50_us":%d,"p90_us":%d,"p99_us":%d,' ..
    '"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), e.connect, e.read, e.write, e.status, e.timeout))
end
"""
LUA_READ = LUA_COMMON + "request = random_get\n"
# One connection per thread (wrk -t N -c N), so requests and responses alternate.
LUA_RMW = (
    LUA_COMMON
    + r"""
local pending = nil
request = function()
  if pending == nil then return random_get() end
  local p = pending
  pending = nil
  n = n + 1
  if kind == "peer" then
    local body = '{"_rev":"' .. p.rev .. '","title":"t' .. n .. '","body":{"text":"'
      .. text .. '"}}'
    return wrk.format("PUT", prefix .. p.id, headers(), body)
  end
  local body = '{"title":"t' .. n .. '","body":{"text":"' .. text .. '"}}'
  return wrk.format("PUT", prefix .. p.id, headers({["If-Match"] = p.rev}), body)
end
local was_get = true
response = function(status, hdrs, body)
  if was_get and status == 200 then
    if kind == "peer" then
      local id, rev = body:match('"_id":"([^"]+)","_rev":"([^"]+)"')
      if id then pending = {id = id, rev = rev} end
    else
      local id = body:match('"id":"([^"]+)"')
      local etag = hdrs["ETag"] or hdrs["etag"] or hdrs["Etag"]
      if id and etag then pending = {id = id, rev = etag} end
    end
  end
  was_get = pending ~= nil
end
"""
)


# ------------------------------------------------------------------ servers
def free_port() -> int:
    from devtools.services import free_port as pick

    return pick()


def wait_http(port: int, path: str, deadline_s: float = 180.0) -> None:
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", path)
            if conn.getresponse().status < 500:
                return
        except OSError:
            pass
        time.sleep(0.3)
    raise RuntimeError(f"nothing answers on port {port}{path}")


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)


class Client:
    """One keep-alive connection; reopens when the server closed it."""

    def __init__(self, port: int, token: str | None) -> None:
        self.port = port
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        self.headers = {"Content-Type": "application/json"}
        if token:
            self.headers["Authorization"] = f"Bearer {token}"

    def call(
        self, method: str, path: str, body: Any = None, **extra: str
    ) -> tuple[int, dict[str, str], Any]:
        data = json.dumps(body).encode() if body is not None else None
        for attempt in (0, 1):
            try:
                self.conn.request(method, path, body=data, headers={**self.headers, **extra})
                resp = self.conn.getresponse()
                raw = resp.read()
                break
            except (http.client.RemoteDisconnected, ConnectionError, BrokenPipeError):
                self.conn.close()
                if attempt:
                    raise
        parsed = json.loads(raw) if raw else None
        return resp.status, dict(resp.getheaders()), parsed


# ------------------------------------------------------------------ wrk
def run_wrk(script: Path, url: str, args: list[str], conns: int, seconds: float) -> dict[str, Any]:
    duration = f"{max(1, round(seconds))}s"  # wrk takes whole seconds only
    cmd = ["wrk", "-t", str(conns), "-c", str(conns), "-d", duration, "--timeout", "10s",
           "-s", str(script), url, "--", *args]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"wrk failed ({done.returncode}): {done.stderr.strip()[-300:]}")
    out = done.stdout
    line = next(x for x in out.splitlines() if x.startswith(WRKJSON))
    data: dict[str, Any] = json.loads(line[len(WRKJSON) :])
    data["rps"] = data["requests"] / (data["duration_us"] / 1e6)
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    data["non2xx"] = int(non2xx.group(1)) if non2xx else 0
    return data


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--connections", type=int, nargs="+", default=[1, 4, 8, 16])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--fresh", type=int, default=100, help="fresh documents written, each")
    parser.add_argument("--revisions", type=int, default=300)
    parser.add_argument("--peer", default=str(WORK / "peer/node_modules/.bin/pouchdb-server"))
    parser.add_argument("--workers", type=int, default=4, help="the local server's workers")
    args = parser.parse_args()
    if not shutil.which("wrk"):
        sys.exit("wrk is not installed (scripts/bench.sh installs it)")
    if not Path(args.peer).exists():
        sys.exit(f"the peer is not installed at {args.peer} (scripts/bench.sh installs it)")

    from chalicelib.api.auth import mint_token
    from chalicelib.config import Settings

    WORK.mkdir(parents=True, exist_ok=True)
    (WORK / "peer").mkdir(exist_ok=True)
    lua_text = TEXT.replace('"', "")
    read_lua, rmw_lua = WORK / "read.lua", WORK / "rmw.lua"
    for path, text in ((read_lua, LUA_READ), (rmw_lua, LUA_RMW)):
        path.write_text(text.replace("__TEXT__", lua_text).replace("__MARK__", WRKJSON))

    database_url = create_database()
    prefix = f"bench:{uuid.uuid4().hex[:10]}:"
    secret = secrets.token_urlsafe(32)
    ours_port, peer_port = free_port(), free_port()
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "REDIS_URL": REDIS_URL,
        "DOCS_REDIS_KEY_PREFIX": prefix,
        "DOCS_JWT_SECRET": secret,
        "DOCS_RATE_LIMIT_READER": "[1000000000, 1000000000]",
        "DOCS_RATE_LIMIT_WRITER": "[1000000000, 1000000000]",
        "DOCS_LOCAL_STATE_FILE": str(WORK / "local-stack.json"),
        "POWERTOOLS_METRICS_DISABLED": "true",
        "POWERTOOLS_TRACE_DISABLED": "true",
    }
    ours_log = (WORK / "serve.log").open("wb")
    ours = subprocess.Popen(
        [sys.executable, "-m", "devtools.cli", "serve", "--host", "127.0.0.1",
         "--port", str(ours_port), "--workers", str(args.workers)],
        cwd=ROOT, env=env, stdout=ours_log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    peer_log = (WORK / "peer.log").open("wb")
    peer = subprocess.Popen(
        [args.peer, "--in-memory", "--port", str(peer_port), "--no-stdout-logs"],
        cwd=WORK / "peer", stdout=peer_log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    token = mint_token(Settings(jwt_secret=secret), org="bench", sub="bencher", roles=["writer"])
    report: dict[str, Any] = {"bench": "http", "docs": DOCS, "doc_bytes": len(TEXT)}
    try:
        wait_http(ours_port, "/health")
        wait_http(peer_port, "/")
        ours_c, peer_c = Client(ours_port, token), Client(peer_port, None)
        assert peer_c.call("PUT", "/bench")[0] in (201, 412)
        ours_ids: list[str] = []
        peer_ids = [f"doc{i:05d}" for i in range(DOCS)]
        for start in range(0, DOCS, 100):
            docs = [
                {"title": f"doc {i}", "body": {"text": TEXT}} for i in range(start, start + 100)
            ]
            status, _, body = ours_c.call("POST", "/documents:batch", {"documents": docs})
            assert status == 200, (status, body)
            ours_ids += [r["id"] for r in body["results"]]
            peer_docs = [
                {"_id": peer_ids[i], **d}
                for i, d in zip(range(start, start + 100), docs, strict=True)
            ]
            status, _, body = peer_c.call("POST", "/bench/_bulk_docs", {"docs": peer_docs})
            assert status == 201, (status, body)
        (WORK / "ours.ids").write_text("\n".join(ours_ids) + "\n")
        (WORK / "peer.ids").write_text("\n".join(peer_ids) + "\n")
        print(f"seeded {DOCS} documents of {len(TEXT)} B in both", flush=True)

        # Read-modify-write latency first, on documents nobody has written yet.
        fresh = min(args.fresh, DOCS // 4)
        lat: dict[str, list[float]] = {"ours": [], "peer": []}
        for i in range(fresh):
            order = ("ours", "peer") if i % 2 == 0 else ("peer", "ours")
            for side in order:
                lat[side].append(
                    rmw_once(side, ours_c, peer_c, ours_ids[-1 - i], peer_ids[-1 - i], i)
                )
        deep: dict[str, list[float]] = {"ours": [], "peer": []}
        for i in range(args.revisions):
            for side in ("ours", "peer") if i % 2 == 0 else ("peer", "ours"):
                ms = rmw_once(side, ours_c, peer_c, ours_ids[-1 - fresh], peer_ids[-1 - fresh], i)
                if i >= args.revisions - 50:
                    deep[side].append(ms)
        report["rmw_latency_ms"] = {
            "fresh_p50": {s: round(statistics.median(v), 3) for s, v in lat.items()},
            "fresh_p99": {s: round(sorted(v)[int(0.99 * (len(v) - 1))], 3) for s, v in lat.items()},
            "deep_p50": {s: round(statistics.median(v), 3) for s, v in deep.items()},
            "revisions": args.revisions,
            "fresh_n": fresh,
        }
        print(f"read-modify-write write p50 ms: {report['rmw_latency_ms']}", flush=True)

        ours_args = [str(WORK / "ours.ids"), "/documents/", "ours", token]
        peer_args = [str(WORK / "peer.ids"), "/bench/", "peer", ""]
        targets = {
            "ours": (f"http://127.0.0.1:{ours_port}", ours_args),
            "peer": (f"http://127.0.0.1:{peer_port}", peer_args),
        }
        for url, wargs in targets.values():  # warm-up: caches, pools, JIT
            run_wrk(read_lua, url, wargs, 4, max(1.0, args.seconds / 2))
        runs: dict[str, dict[str, dict[str, list[dict[str, Any]]]]] = {}
        for workload, script in (("read", read_lua), ("rmw", rmw_lua)):
            runs[workload] = {}
            for conns in args.connections:
                per = runs[workload].setdefault(str(conns), {"ours": [], "peer": []})
                for r in range(args.rounds):
                    order = ("ours", "peer") if (r + conns) % 2 == 0 else ("peer", "ours")
                    for side in order:
                        url, wargs = targets[side]
                        per[side].append(run_wrk(script, url, wargs, conns, args.seconds))
                o = statistics.fmean(x["rps"] for x in per["ours"])
                p = statistics.fmean(x["rps"] for x in per["peer"])
                print(f"{workload:<5} c={conns:<3} ours {o:8.0f} req/s  peer {p:8.0f} req/s"
                      f"  ({o / p:.2f}x)", flush=True)  # fmt: skip
        summary: dict[str, Any] = {}
        for workload, by_conns in runs.items():
            for conns, per in by_conns.items():
                div = 2 if workload == "rmw" else 1  # a cycle is two requests
                summary[f"{workload}_c{conns}"] = {
                    side: {
                        "rps": round(statistics.fmean(x["rps"] for x in xs) / div, 1),
                        "p50_ms": round(statistics.fmean(x["p50_us"] for x in xs) / 1000, 3),
                        "p99_ms": round(statistics.fmean(x["p99_us"] for x in xs) / 1000, 3),
                        "errors": sum(x["non2xx"] + x["timeout"] + x["connect"] for x in xs),
                    }
                    for side, xs in per.items()
                }
        report["wrk"] = summary
        report["seconds_per_run"] = args.seconds
        report["rounds"] = args.rounds
        report["workers"] = args.workers
    finally:
        stop(ours)
        stop(peer)
        ours_log.close()
        peer_log.close()
        import redis

        client = redis.Redis.from_url(REDIS_URL)
        delete_prefix(client, prefix)
        drop_database(database_url)
    print(json.dumps(report))


def rmw_once(side: str, ours: Client, peer: Client, ours_id: str, peer_id: str, i: int) -> float:
    """GET then PUT the document back whole with its revision; the PUT's ms."""
    if side == "ours":
        status, headers, body = ours.call("GET", f"/documents/{ours_id}")
        assert status == 200, (status, body)
        doc = {"title": f"rmw {i}", "body": body["body"]}
        started = time.perf_counter()
        status, _, body = ours.call(
            "PUT", f"/documents/{ours_id}", doc, **{"If-Match": headers["ETag"]}
        )
    else:
        status, _, body = peer.call("GET", f"/bench/{peer_id}")
        assert status == 200, (status, body)
        doc = {"_rev": body["_rev"], "title": f"rmw {i}", "body": body["body"]}
        started = time.perf_counter()
        status, _, body = peer.call("PUT", f"/bench/{peer_id}", doc)
    ms = (time.perf_counter() - started) * 1000
    assert status in (200, 201), (side, status, body)
    return ms


if __name__ == "__main__":
    main()
