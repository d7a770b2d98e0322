"""What the audit hash chain costs a write, measured next to the same write without it.

    .venv/bin/python -m benchmarks.bench_audit_chain [--writes 400] [--rounds 4] [--threads 4]

A write here is what every document change does to the audit trail: one
tenant-scoped transaction (``SET LOCAL`` role and org) that inserts one
``audit_log`` row, committed.  With the chain, the ``BEFORE INSERT`` trigger
locks the org's chain head, looks up the actor's pseudonym and hashes the row;
without it (the trigger disabled in this private database) the row is just
inserted.  Samples alternate in rounds (chain, plain, chain, ...), so a noisy
neighbour hits both alike.  ``--threads`` writers of the same org, then of one
org each, show how the per-org chain lock serializes commits.  Then the chain
of every org written is verified (the verifier's rows/s).

Private database ``docs_bench_<random>``, dropped at the end.  Prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import statistics
import threading
import time
from typing import Any

import psycopg

from chalicelib.config import Settings
from tests.conftest import create_database, drop_database

INSERT = (
    "BEGIN; SELECT set_config('role', 'docs_app', true), set_config('app.org', %s, true); "
    "INSERT INTO audit_log (org, actor, action, doc_id, version, prev_version, request_id) "
    "VALUES (%s, %s, 'change', 'd1', 2, 1, 'r'); COMMIT"
)


def _writes(url: str, org: str, n: int, actors: int = 5) -> list[float]:
    samples = []
    with psycopg.connect(url, autocommit=True, prepare_threshold=None) as conn:
        cur = psycopg.ClientCursor(conn)
        for i in range(n):
            started = time.perf_counter()
            cur.execute(INSERT, (org, org, f"user{i % actors}"))
            samples.append((time.perf_counter() - started) * 1000)
    return samples


def _trigger(admin_url: str, on: bool) -> None:
    with psycopg.connect(admin_url, autocommit=True) as conn:
        verb = "ENABLE" if on else "DISABLE"
        conn.execute(f"ALTER TABLE audit_log {verb} TRIGGER audit_log_chain")


def _throughput(url: str, orgs: list[str], per_thread: int) -> float:
    threads = [threading.Thread(target=_writes, args=(url, org, per_thread)) for org in orgs]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return len(orgs) * per_thread / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--writes", type=int, default=400)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--threads", type=int, default=4)
    args = parser.parse_args()
    admin = create_database()
    runtime = Settings(database_url=admin).runtime_database_url
    try:
        chain: list[float] = []
        plain: list[float] = []
        per_round = args.writes // args.rounds
        for _ in range(args.rounds):
            chain += _writes(runtime, "bench-chain", per_round)
            _trigger(admin, on=False)
            plain += _writes(runtime, "bench-plain", per_round)
            _trigger(admin, on=True)
        one_org = _throughput(runtime, ["bench-one"] * args.threads, per_round)
        many = _throughput(runtime, [f"bench-{i}" for i in range(args.threads)], per_round)

        from chalicelib import bootstrap

        container = bootstrap.build(Settings(database_url=admin))
        try:
            started = time.perf_counter()
            reports = [container.audit.verify_org(o) for o in ("bench-chain", "bench-one")]
            verify_s = time.perf_counter() - started
        finally:
            container.close()
        rows = sum(r.rows for r in reports)
        result: dict[str, Any] = {
            "write_ms_p50_chain": round(statistics.median(chain), 3),
            "write_ms_p50_plain": round(statistics.median(plain), 3),
            "write_ms_p95_chain": round(statistics.quantiles(chain, n=20)[18], 3),
            "write_ms_p95_plain": round(statistics.quantiles(plain, n=20)[18], 3),
            f"writes_per_s_{args.threads}_threads_one_org": round(one_org),
            f"writes_per_s_{args.threads}_threads_{args.threads}_orgs": round(many),
            "verify_rows": rows,
            "verify_rows_per_s": round(rows / verify_s),
            "chains_ok": all(r.ok for r in reports),
        }
        print(json.dumps(result))
    finally:
        drop_database(admin)


if __name__ == "__main__":
    main()
