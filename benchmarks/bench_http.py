"""HTTP through the local server next to two peers, run the same way.

    .venv/bin/python -m benchmarks.bench_http [--connections 1 4 8 16] [--seconds 5]
        [--rounds 2] [--peers pouchdb kinto]

Every server runs on this machine, each seeded with the same 1000 documents of
about 2 KB: this service through ``python -m devtools.cli serve`` (the local
server, its default 4 workers, on a private database and key prefix) and the
peers installed by ``benchmarks.peers``:

- ``pouchdb``: ``pouchdb-server`` in memory (a CouchDB API; not durable);
- ``kinto``: Kinto on the machine's PostgreSQL in a database of its own, served
  by gunicorn with as many gthread workers as the local server, keep-alive
  (``benchmarks.kinto_peer``): a durable store like this one.

A real load tool, ``wrk``, drives all of them with the same Lua scripts:

- *read by id*: GET a random one of the 1000 documents per request;
- *read-modify-write*: each connection GETs a random document, then writes it
  back conditionally, and again; throughput is complete cycles per second.
  This service: ``PATCH`` (merge patch of title and body) with ``If-Match:
  <ETag>``; Kinto: ``PATCH`` of the record's data with ``If-Match: "<timestamp>"``;
  pouchdb-server (no PATCH in the CouchDB API): ``PUT`` whole with ``_rev``;
- *list*: GET the first page of 20 documents with their bodies.

Each (workload, connections) pair runs ``--rounds`` times, the servers
alternating (the order rotates from round to round); the figure is the mean
throughput and the mean of wrk's p50 and p99 latencies.

Then, with one keep-alive client (``http.client``), the latency of the write
of a read-modify-write (a PUT whole), p50, against pouchdb-server: on 100
fresh documents (their first revision), alternating between the servers, and
on one document after ``--revisions`` revisions.

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

from benchmarks import kinto_peer, peers
from benchmarks.bench_api import REDIS_URL, create_database, delete_prefix, drop_database

ROOT = Path(__file__).resolve().parents[1]
WORK = ROOT / "var" / "bench"
DOCS = 1000
TEXT = ("The quarterly plan, its goals and its risks. " * 46)[:2000]  # ~2 KB a document
WRKJSON = "WRKJSON "

# Shared by every server: a table of ids, a path prefix, the kind of server, the
# Authorization header and the list path come as arguments.
LUA_COMMON = r"""
local ids, prefix, auth, kind, list = {}, "", nil, "ours", "/"
local text = "__TEXT__"
local n, last_id = 0, nil
writes = 0  -- successful writes, a global: done() sums it over the threads
local threads = {}
setup = function(thread) threads[#threads + 1] = thread end
init = function(args)
  for line in io.lines(args[1]) do ids[#ids + 1] = line end
  prefix, kind = args[2], args[3]
  if args[4] and args[4] ~= "" then auth = args[4] end
  list = args[5] or "/"
  math.randomseed(os.time() + tonumber(tostring({}):match("0x(%x+)") or "0", 16) % 100000)
end
local function headers(extra)
  local h = {["Content-Type"] = "application/json"}
  if auth then h["Authorization"] = auth end
  for k, v in pairs(extra or {}) do h[k] = v end
  return h
end
local function random_get()
  last_id = ids[math.random(#ids)]
  return wrk.format("GET", prefix .. last_id, headers())
end
done = function(summary, latency, requests)
  local e, sent = summary.errors, 0
  for _, thread in ipairs(threads) do sent = sent + (thread:get("writes") or 0) end
  io.write(string.format(
    '__MARK__{"requests":%d,"writes":%d,"duration_us":%d,"p50_us":%d,"p90_us":%d,' ..
    '"p99_us":%d,"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d}\n',
    summary.requests, sent, summary.duration, latency:percentile(50),
    latency:percentile(90), latency:percentile(99), e.connect, e.read, e.write, e.status,
    e.timeout))
end
"""
LUA_READ = LUA_COMMON + "request = random_get\n"
LUA_LIST = LUA_COMMON + 'request = function() return wrk.format("GET", list, headers()) end\n'
# One connection per thread (wrk -t N -c N), so requests and responses alternate.
LUA_RMW = (
    LUA_COMMON
    + r"""
local pending, was_get = nil, false
request = function()
  if pending == nil then
    was_get = true
    return random_get()
  end
  local p = pending
  pending, was_get = nil, false
  n = n + 1
  local data = '"title":"t' .. n .. '","body":{"text":"' .. text .. '"}'
  if kind == "pouchdb" then
    return wrk.format("PUT", prefix .. p.id, headers(), '{"_rev":"' .. p.rev .. '",' .. data .. '}')
  elseif kind == "kinto" then
    return wrk.format("PATCH", prefix .. p.id, headers({["If-Match"] = p.rev}),
      '{"data":{' .. data .. '}}')
  end
  return wrk.format("PATCH", prefix .. p.id,
    headers({["If-Match"] = p.rev, ["Content-Type"] = "application/merge-patch+json"}),
    '{' .. data .. '}')
end
-- Only the answer to a GET starts a write; the answer to a write starts a GET.
response = function(status, hdrs, body)
  if not was_get then
    if status >= 200 and status < 300 then writes = writes + 1 end
    return
  end
  if status == 200 then
    if kind == "pouchdb" then
      local rev = body:match('"_rev":"([^"]+)"')
      if rev then pending = {id = last_id, rev = rev} end
    else
      local etag = hdrs["ETag"] or hdrs["etag"] or hdrs["Etag"]
      if etag then pending = {id = last_id, rev = etag} end
    end
  end
end
"""
)
WORKLOADS = ("read", "rmw", "list")
PAGE = 20  # documents per list page


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

    def __init__(self, port: int, authorization: str | None) -> None:
        self.port = port
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        self.headers = {"Content-Type": "application/json"}
        if authorization:
            self.headers["Authorization"] = authorization

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


def rotation(sides: list[str], r: int, conns: int) -> list[str]:
    """The order of the servers in round ``r``: each goes first in turn."""
    k = (r + conns) % len(sides)
    return sides[k:] + sides[:k]


def summarise(runs: list[dict[str, Any]], workload: str) -> dict[str, Any]:
    """Mean throughput and mean p50/p99 (of all requests) of wrk runs.

    The throughput of read-modify-write is in cycles: successful writes a second."""
    if workload == "rmw":
        if not all(x["writes"] for x in runs):
            raise RuntimeError(f"a read-modify-write run wrote nothing: {runs}")
        rates = [x["writes"] / (x["duration_us"] / 1e6) for x in runs]
    else:
        rates = [x["rps"] for x in runs]
    return {
        "rps": round(statistics.fmean(rates), 1),
        "p50_ms": round(statistics.fmean(x["p50_us"] for x in runs) / 1000, 3),
        "p99_ms": round(statistics.fmean(x["p99_us"] for x in runs) / 1000, 3),
        "errors": sum(x["non2xx"] + x["timeout"] + x["connect"] for x in runs),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--connections", type=int, nargs="+", default=[1, 4, 8, 16])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--fresh", type=int, default=100, help="fresh documents written, each")
    parser.add_argument("--revisions", type=int, default=300)
    parser.add_argument("--peers", nargs="+", choices=["pouchdb", "kinto"],
                        default=["pouchdb", "kinto"])  # fmt: skip
    parser.add_argument("--pouchdb", default=str(peers.pouchdb_bin()))
    parser.add_argument("--kinto-venv", default=str(peers.kinto_venv()))
    parser.add_argument("--kinto-threads", type=int, default=4, help="gthread threads a worker")
    parser.add_argument("--workers", type=int, default=4, help="workers of each server")
    args = parser.parse_args()
    if not shutil.which("wrk"):
        sys.exit("wrk is not installed (benchmarks.peers installs it)")
    if "pouchdb" in args.peers and not Path(args.pouchdb).exists():
        sys.exit(f"pouchdb-server is not installed at {args.pouchdb}")
    kinto_venv = Path(args.kinto_venv)
    if "kinto" in args.peers and not (kinto_venv / "bin" / "gunicorn").exists():
        sys.exit(f"Kinto is not installed in {kinto_venv}")

    from chalicelib.api.auth import mint_token
    from chalicelib.config import Settings

    WORK.mkdir(parents=True, exist_ok=True)
    (WORK / "peer").mkdir(exist_ok=True)
    lua_text = TEXT.replace('"', "")
    scripts = {w: WORK / f"{w}.lua" for w in WORKLOADS}
    for workload, lua in (("read", LUA_READ), ("rmw", LUA_RMW), ("list", LUA_LIST)):
        scripts[workload].write_text(lua.replace("__TEXT__", lua_text).replace("__MARK__", WRKJSON))

    database_url = create_database()
    prefix = f"bench:{uuid.uuid4().hex[:10]}:"
    secret = secrets.token_urlsafe(32)
    ports = {side: free_port() for side in ("ours", *args.peers)}
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
    procs: list[subprocess.Popen[bytes]] = []
    logs = []
    kinto_db: str | None = None
    ours_log = (WORK / "serve.log").open("wb")
    logs.append(ours_log)
    procs.append(subprocess.Popen(
        [sys.executable, "-m", "devtools.cli", "serve", "--host", "127.0.0.1",
         "--port", str(ports["ours"]), "--workers", str(args.workers)],
        cwd=ROOT, env=env, stdout=ours_log, stderr=subprocess.STDOUT, start_new_session=True,
    ))  # fmt: skip
    if "pouchdb" in args.peers:
        peer_log = (WORK / "peer.log").open("wb")
        logs.append(peer_log)
        procs.append(subprocess.Popen(
            [args.pouchdb, "--in-memory", "--port", str(ports["pouchdb"]), "--no-stdout-logs"],
            cwd=WORK / "peer", stdout=peer_log, stderr=subprocess.STDOUT, start_new_session=True,
        ))  # fmt: skip
    token = mint_token(Settings(jwt_secret=secret), org="bench", sub="bencher", roles=["writer"])
    report: dict[str, Any] = {"bench": "http", "docs": DOCS, "doc_bytes": len(TEXT),
                              "peers": args.peers}  # fmt: skip
    try:
        if "kinto" in args.peers:
            proc, kinto_db, _ = kinto_peer.start(
                kinto_venv, WORK / "kinto", ports["kinto"], args.workers, args.kinto_threads
            )
            procs.append(proc)
            report["kinto"] = {"version": peers.KINTO_VERSION, "workers": args.workers,
                               "threads": args.kinto_threads}  # fmt: skip
        wait_http(ports["ours"], "/health")
        clients = {"ours": Client(ports["ours"], f"Bearer {token}")}
        if "pouchdb" in args.peers:
            wait_http(ports["pouchdb"], "/")
            clients["pouchdb"] = Client(ports["pouchdb"], None)
            assert clients["pouchdb"].call("PUT", "/bench")[0] in (201, 412)
        if "kinto" in args.peers:
            wait_http(ports["kinto"], "/v1/")
            clients["kinto"] = Client(ports["kinto"], kinto_peer.authorization())
            for path in ("/v1/buckets/bench", kinto_peer.COLLECTION):
                status, _, body = clients["kinto"].call("PUT", path, {})
                assert status in (200, 201), (path, status, body)
        ids = seed(clients)
        print(f"seeded {DOCS} documents of {len(TEXT)} B in {', '.join(clients)}", flush=True)

        if "pouchdb" in clients:
            report["rmw_latency_ms"] = write_latency(clients, ids, args.fresh, args.revisions)
            print(f"read-modify-write write p50 ms: {report['rmw_latency_ms']}", flush=True)

        wrk_args = {
            "ours": [str(WORK / "ours.ids"), "/documents/", "ours", f"Bearer {token}",
                     f"/documents?limit={PAGE}"],
            "pouchdb": [str(WORK / "peer.ids"), "/bench/", "pouchdb", "",
                        f"/bench/_all_docs?include_docs=true&limit={PAGE}"],
            "kinto": [str(WORK / "peer.ids"), f"{kinto_peer.COLLECTION}/records/", "kinto",
                      kinto_peer.authorization(), f"{kinto_peer.COLLECTION}/records?_limit={PAGE}"],
        }  # fmt: skip
        sides = list(clients)
        for side in sides:  # warm-up: caches, pools, JIT
            run_wrk(scripts["read"], f"http://127.0.0.1:{ports[side]}", wrk_args[side], 4,
                    max(1.0, args.seconds / 2))  # fmt: skip
        summary: dict[str, Any] = {}
        for workload in WORKLOADS:
            for conns in args.connections:
                per: dict[str, list[dict[str, Any]]] = {side: [] for side in sides}
                for r in range(args.rounds):
                    for side in rotation(sides, r, conns):
                        url = f"http://127.0.0.1:{ports[side]}"
                        per[side].append(
                            run_wrk(scripts[workload], url, wrk_args[side], conns, args.seconds)
                        )
                row = {side: summarise(xs, workload) for side, xs in per.items()}
                summary[f"{workload}_c{conns}"] = row
                print(f"{workload:<5} c={conns:<3} " + "  ".join(
                    f"{side} {v['rps']:8.0f}/s p99 {v['p99_ms']:7.1f} ms"
                    for side, v in row.items()), flush=True)  # fmt: skip
        report["wrk"] = summary
        report["seconds_per_run"] = args.seconds
        report["rounds"] = args.rounds
        report["workers"] = args.workers
    finally:
        for proc in procs:
            stop(proc)
        for log in logs:
            log.close()
        import redis

        delete_prefix(redis.Redis.from_url(REDIS_URL), prefix)
        drop_database(database_url)
        if kinto_db:
            kinto_peer.drop_database(kinto_db)
    print(json.dumps(report))


def seed(clients: dict[str, Client]) -> dict[str, list[str]]:
    """The same DOCS documents in every server; the ids of each (written to var/bench)."""
    ids: dict[str, list[str]] = {"ours": []}
    peer_ids = [f"doc{i:05d}" for i in range(DOCS)]
    for start in range(0, DOCS, 100):
        docs = [{"title": f"doc {i}", "body": {"text": TEXT}} for i in range(start, start + 100)]
        some = peer_ids[start : start + 100]
        status, _, body = clients["ours"].call("POST", "/documents:batch", {"documents": docs})
        assert status == 200, (status, body)
        ids["ours"] += [r["id"] for r in body["results"]]
        if "pouchdb" in clients:
            peer_docs = [{"_id": i, **d} for i, d in zip(some, docs, strict=True)]
            status, _, body = clients["pouchdb"].call(
                "POST", "/bench/_bulk_docs", {"docs": peer_docs}
            )
            assert status == 201, (status, body)
        if "kinto" in clients:
            status, _, body = clients["kinto"].call(
                "POST", "/v1/batch", kinto_peer.seed_requests(some, docs)
            )
            assert status == 200, (status, body)
            assert all(r["status"] == 201 for r in body["responses"]), body["responses"][:1]
    ids["peer"] = peer_ids
    (WORK / "ours.ids").write_text("\n".join(ids["ours"]) + "\n")
    (WORK / "peer.ids").write_text("\n".join(peer_ids) + "\n")
    return ids


def write_latency(
    clients: dict[str, Client], ids: dict[str, list[str]], fresh_n: int, revisions: int
) -> dict[str, Any]:
    """p50/p99 of the write of a read-modify-write, this service vs pouchdb-server.

    On documents nobody has written yet (their first revision), then on one
    document after ``revisions`` revisions; the two servers alternate."""
    ours, peer = clients["ours"], clients["pouchdb"]
    ours_ids, peer_ids = ids["ours"], ids["peer"]
    fresh = min(fresh_n, DOCS // 4)
    lat: dict[str, list[float]] = {"ours": [], "pouchdb": []}
    for i in range(fresh):
        for side in ("ours", "pouchdb") if i % 2 == 0 else ("pouchdb", "ours"):
            lat[side].append(rmw_once(side, ours, peer, ours_ids[-1 - i], peer_ids[-1 - i], i))
    deep: dict[str, list[float]] = {"ours": [], "pouchdb": []}
    for i in range(revisions):
        for side in ("ours", "pouchdb") if i % 2 == 0 else ("pouchdb", "ours"):
            ms = rmw_once(side, ours, peer, ours_ids[-1 - fresh], peer_ids[-1 - fresh], i)
            if i >= revisions - 50:
                deep[side].append(ms)
    return {
        "fresh_p50": {s: round(statistics.median(v), 3) for s, v in lat.items()},
        "fresh_p99": {s: round(sorted(v)[int(0.99 * (len(v) - 1))], 3) for s, v in lat.items()},
        "deep_p50": {s: round(statistics.median(v), 3) for s, v in deep.items()},
        "revisions": revisions,
        "fresh_n": fresh,
    }


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
