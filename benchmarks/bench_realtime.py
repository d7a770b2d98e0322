"""Real-time: write-to-delivery latency with many WebSocket subscribers, local stack.

    .venv/bin/python -m benchmarks.bench_realtime [--subscribers 100] [--writes 200] [--rate 10]

Starts the local server (``python -m devtools.cli serve``, its own database on
DATABASE_URL's server, its own Redis key prefix), opens ``--subscribers``
WebSocket connections to ``/realtime`` (one asyncio loop), each subscribed to
the whole org, then makes ``--writes`` document writes over HTTP at ``--rate``
per second.  For every (write, subscriber) pair: the time from the write's
HTTP response (the commit acknowledged) to the frame's arrival.  Split:

- *pickup*: response → the first subscriber's frame (NOTIFY, the fan-out's
  read of the outbox after the transaction horizon, the Redis lookups);
- *spread*: first → last subscriber of the same write (posting to 100 queues
  and the sockets).

Target: p99 <= 250 ms.  Prints a table and one JSON line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import time
import urllib.request
import uuid
from typing import Any

os.environ.setdefault("POWERTOOLS_TRACE_DISABLED", "true")
os.environ.setdefault("POWERTOOLS_METRICS_DISABLED", "true")

from tests.conftest import REDIS_URL, create_database, drop_database, make_token
from tests.e2e.conftest import LocalServer, server_env


def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered)) - 1))]


def _write(base: str, token: str, title: str) -> tuple[str, float, float]:
    data = json.dumps({"title": title}).encode()
    req = urllib.request.Request(base + "/documents", data=data, method="POST", headers={
        "Authorization": f"Bearer {token}", "Content-Type": "application/json"})  # fmt: skip
    sent = time.perf_counter()
    with urllib.request.urlopen(req, timeout=30) as resp:
        doc = json.loads(resp.read())
    return str(doc["id"]), sent, time.perf_counter()


async def run(port: int, base: str, org: str, subscribers: int, writes: int, rate: float
              ) -> dict[str, Any]:  # fmt: skip
    from websockets.asyncio.client import connect

    reader = make_token(org=org, roles=("reader",))
    writer = make_token(org=org, roles=("writer",))
    arrivals: dict[str, list[float]] = {}
    conns = []
    for _ in range(subscribers):
        ws = await connect(f"ws://127.0.0.1:{port}/realtime",
                           subprotocols=["docs.v1", f"bearer.{reader}"],  # type: ignore[list-item]
                           open_timeout=30, max_queue=None)  # fmt: skip
        await ws.send(json.dumps({"action": "subscribe", "org": True}))
        while json.loads(await ws.recv())["type"] != "subscribed":
            pass
        conns.append(ws)

    async def listen(ws: Any) -> None:
        async for raw in ws:
            at = time.perf_counter()
            frame = json.loads(raw)
            if frame.get("type") == "change":
                arrivals.setdefault(frame["id"], []).append(at)

    listeners = [asyncio.create_task(listen(ws)) for ws in conns]
    loop = asyncio.get_running_loop()
    acks: dict[str, tuple[float, float]] = {}
    start = time.perf_counter()
    for i in range(writes):
        due = start + i / rate
        await asyncio.sleep(max(0.0, due - time.perf_counter()))
        doc_id, sent, acked = await loop.run_in_executor(None, _write, base, writer, f"w{i}")
        acks[doc_id] = (sent, acked)
    deadline = time.perf_counter() + 30
    while time.perf_counter() < deadline and any(
        len(arrivals.get(d, [])) < subscribers for d in acks
    ):
        await asyncio.sleep(0.1)
    for task in listeners:
        task.cancel()
    for ws in conns:
        await ws.close()
    after_ack, pickup, spread, write_ms = [], [], [], []
    missing = 0
    for doc_id, (sent, acked) in acks.items():
        got = arrivals.get(doc_id, [])
        missing += subscribers - len(got)
        write_ms.append((acked - sent) * 1000)
        after_ack += [(t - acked) * 1000 for t in got]
        if got:
            pickup.append((min(got) - acked) * 1000)
            spread.append((max(got) - min(got)) * 1000)
    return {
        "subscribers": subscribers, "writes": writes, "rate_per_s": rate,
        "deliveries": len(after_ack), "missing": missing,
        "delivery_p50_ms": round(pct(after_ack, 50), 1),
        "delivery_p99_ms": round(pct(after_ack, 99), 1),
        "delivery_max_ms": round(max(after_ack, default=float("nan")), 1),
        "pickup_p50_ms": round(pct(pickup, 50), 1), "pickup_p99_ms": round(pct(pickup, 99), 1),
        "spread_p50_ms": round(pct(spread, 50), 1), "spread_p99_ms": round(pct(spread, 99), 1),
        "write_p50_ms": round(pct(write_ms, 50), 1), "write_p99_ms": round(pct(write_ms, 99), 1),
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--subscribers", type=int, default=100)
    parser.add_argument("--writes", type=int, default=200)
    parser.add_argument("--rate", type=float, default=10.0)
    args = parser.parse_args()
    database = create_database()
    server = LocalServer(server_env(database, REDIS_URL, f"bench:{uuid.uuid4().hex[:8]}:",
                                    DOCS_REALTIME_QUEUE_FRAMES="4096"))  # fmt: skip
    try:
        result = asyncio.run(run(server.port, server.base, f"bench-{uuid.uuid4().hex[:6]}",
                                 args.subscribers, args.writes, args.rate))  # fmt: skip
    finally:
        server.stop()
        drop_database(database)
    result["machine"] = f"{platform.machine()}, {os.cpu_count()} cpu, {platform.python_version()}"
    width = max(len(k) for k in result)
    for key, value in result.items():
        print(f"{key:<{width}}  {value}")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
