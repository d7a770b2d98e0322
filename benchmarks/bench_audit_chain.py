"""What the audit hash chain costs a write, and whether one org's writers queue.

    .venv/bin/python -m benchmarks.bench_audit_chain [--writes 400] [--rounds 4] [--threads 8]

A write here is what every document change does to the audit trail: one
tenant-scoped transaction (``SET LOCAL`` role and org) that inserts one
``audit_log`` row, committed.

1. Single writer, chain against plain: samples alternate in rounds (the insert
   trigger on, then disabled in this private database), so a noisy neighbour
   hits both alike.
2. Concurrency: ``--threads`` writers of one org, then ``--threads`` writers of
   one org each, alternating for ``--rounds`` rounds in the same run; each
   configuration's throughput (the median of its rounds) and the p50/p99 of
   every write's latency, and the ratio one org / many orgs.  When the schema
   chains off the write path (migration 0016), a chainer thread runs beside
   the writers as the local worker would (``docs_audit_chain_all`` every
   ``--chain-every`` seconds), and the largest unchained backlog it saw is
   reported.
3. Every org written is chained (what is left) and verified (the verifier's rows/s).

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


def _writes(url: str, org: str, n: int, out: list[float] | None = None) -> list[float]:
    samples = []
    with psycopg.connect(url, autocommit=True, prepare_threshold=None) as conn:
        cur = psycopg.ClientCursor(conn)
        for i in range(n):
            started = time.perf_counter()
            cur.execute(INSERT, (org, org, f"user{i % 5}"))
            samples.append((time.perf_counter() - started) * 1000)
    if out is not None:
        out.extend(samples)
    return samples


def _trigger(admin_url: str, on: bool) -> None:
    with psycopg.connect(admin_url, autocommit=True) as conn:
        verb = "ENABLE" if on else "DISABLE"
        conn.execute(f"ALTER TABLE audit_log {verb} TRIGGER audit_log_chain")


def _off_path(admin_url: str) -> bool:
    with psycopg.connect(admin_url, autocommit=True) as conn:
        name = "docs_audit_chain_pending(text,integer,boolean)"
        row = conn.execute("SELECT to_regprocedure(%s)", (name,)).fetchone()
    return row is not None and row[0] is not None


class _Chainer(threading.Thread):
    """Links pending rows every ``every`` seconds, as the local worker does."""

    def __init__(self, url: str, every: float) -> None:
        super().__init__(daemon=True)
        self.url, self.every = url, every
        self.stop = threading.Event()
        self.max_backlog = 0
        self.chained = 0

    def run(self) -> None:
        with psycopg.connect(self.url, autocommit=True) as conn:
            while not self.stop.is_set():
                row = conn.execute(
                    "SELECT coalesce(sum(n), 0) FROM docs_audit_chain_all(5000)"
                ).fetchone()
                self.chained += int(row[0]) if row else 0
                self.max_backlog = max(self.max_backlog, int(row[0]) if row else 0)
                self.stop.wait(self.every)


def _concurrent(url: str, orgs: list[str], per_thread: int) -> tuple[float, list[float]]:
    samples: list[float] = []
    threads = [threading.Thread(target=_writes, args=(url, o, per_thread, samples)) for o in orgs]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return len(orgs) * per_thread / (time.perf_counter() - started), samples


def _pct(samples: list[float], q: int) -> float:
    return round(statistics.quantiles(samples, n=100)[q - 1], 2)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--writes", type=int, default=400, help="per thread and round")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--chain-every", type=float, default=0.2)
    args = parser.parse_args()
    admin = create_database()
    settings = Settings(database_url=admin)
    runtime = settings.runtime_database_url
    off_path = _off_path(admin)
    try:
        chain: list[float] = []
        plain: list[float] = []
        per_round = max(args.writes // args.rounds, 20)
        for _ in range(args.rounds):
            chain += _writes(runtime, "bench-chain", per_round)
            _trigger(admin, on=False)
            plain += _writes(runtime, "bench-plain", per_round)
            _trigger(admin, on=True)
        chainer = _Chainer(admin, args.chain_every) if off_path else None
        if chainer is not None:
            chainer.start()
        one_rates: list[float] = []
        many_rates: list[float] = []
        one_lat: list[float] = []
        many_lat: list[float] = []
        many_orgs = [f"bench-{i}" for i in range(args.threads)]
        for _ in range(args.rounds):
            rate, lat = _concurrent(runtime, ["bench-one"] * args.threads, args.writes)
            one_rates.append(rate)
            one_lat += lat
            rate, lat = _concurrent(runtime, many_orgs, args.writes)
            many_rates.append(rate)
            many_lat += lat
        if chainer is not None:
            chainer.stop.set()
            chainer.join()
            with psycopg.connect(admin, autocommit=True) as conn:
                conn.execute("SELECT * FROM docs_audit_chain_all(1000000)").fetchall()

        from chalicelib import bootstrap

        container = bootstrap.build(settings)
        try:
            started = time.perf_counter()
            reports = [container.audit.verify_org(o) for o in ("bench-chain", "bench-one")]
            verify_s = time.perf_counter() - started
        finally:
            container.close()
        rows = sum(r.rows for r in reports)
        one, many = statistics.median(one_rates), statistics.median(many_rates)
        t = args.threads
        result: dict[str, Any] = {
            "chain_off_write_path": off_path,
            "write_ms_p50_chain": round(statistics.median(chain), 3),
            "write_ms_p50_plain": round(statistics.median(plain), 3),
            "write_ms_p95_chain": round(statistics.quantiles(chain, n=20)[18], 3),
            "write_ms_p95_plain": round(statistics.quantiles(plain, n=20)[18], 3),
            f"writes_per_s_{t}_threads_one_org": round(one),
            f"writes_per_s_{t}_threads_{t}_orgs": round(many),
            "one_org_over_many": round(one / many, 3),
            "one_org_rounds": [round(r) for r in one_rates],
            "many_orgs_rounds": [round(r) for r in many_rates],
            "one_org_ms_p50": _pct(one_lat, 50),
            "one_org_ms_p99": _pct(one_lat, 99),
            "many_orgs_ms_p50": _pct(many_lat, 50),
            "many_orgs_ms_p99": _pct(many_lat, 99),
            "one_org_p99_over_p50": round(_pct(one_lat, 99) / _pct(one_lat, 50), 2),
            "max_unchained_batch": chainer.max_backlog if chainer else None,
            "verify_rows": rows,
            "verify_rows_per_s": round(rows / verify_s),
            "chains_ok": all(r.ok for r in reports),
        }
        print(json.dumps(result))
    finally:
        drop_database(admin)


if __name__ == "__main__":
    main()
