"""A small linearizability-style checker for reads after acknowledged writes."""

from __future__ import annotations

import random
import threading
import time
from dataclasses import dataclass

from tests.e2e.conftest import Client


@dataclass(frozen=True)
class Op:
    kind: str  # "read" | "write"
    doc: str
    start: float
    end: float
    version: int  # observed (read) or acknowledged (write)
    status: int


def run_history(
    client: Client,
    doc_ids: list[str],
    *,
    threads: int,
    ops_per_thread: int,
    write_ratio: float,
    seed: int,
) -> list[Op]:
    history: list[Op] = []
    lock = threading.Lock()
    etags = {d: client.request("GET", f"/documents/{d}").headers["etag"] for d in doc_ids}

    def worker(n: int) -> None:
        rng = random.Random(seed + n)
        for i in range(ops_per_thread):
            doc = rng.choice(doc_ids)
            start = time.monotonic()
            if rng.random() < write_ratio:
                r = client.request(
                    "PATCH",
                    f"/documents/{doc}",
                    {"title": f"t{n}-{i}"},
                    headers={
                        "Content-Type": "application/merge-patch+json",
                        "If-Match": etags[doc],
                    },
                )
                end = time.monotonic()
                if "etag" in r.headers:
                    etags[doc] = r.headers["etag"]
                version = r.json()["version"] if r.status == 200 else 0
                op = Op("write", doc, start, end, version, r.status)
            else:
                r = client.request("GET", f"/documents/{doc}")
                end = time.monotonic()
                op = Op(
                    "read",
                    doc,
                    start,
                    end,
                    r.json()["version"] if r.status == 200 else -1,
                    r.status,
                )
            with lock:
                history.append(op)

    pool = [threading.Thread(target=worker, args=(n,)) for n in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    return history


def stale_reads(history: list[Op]) -> list[tuple[Op, Op]]:
    """Reads that began after a write was acknowledged yet saw an older version."""
    violations = []
    acked = [op for op in history if op.kind == "write" and op.status == 200]
    for read in (op for op in history if op.kind == "read" and op.status == 200):
        for write in acked:
            if write.doc == read.doc and write.end < read.start and read.version < write.version:
                violations.append((read, write))
                break
    return violations
