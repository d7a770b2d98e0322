"""A small real-time history checker for reads after acknowledged writes.

Clients drive reads and conditional writes (merge-patch + If-Match) on a few
documents through the HTTP server and record, per operation, its start and
end (``time.monotonic``), its status and the version it observed (read) or
that was acknowledged (write).  The checks are the client-visible promises of
DESIGN.md rule 2:

- ``stale_reads``: a read that *started* after a write's acknowledgement must
  not return an older version than that write (read-your-writes, and
  everybody-else-reads-it-too);
- ``lost_updates``: two acknowledged conditional writes never produce the same
  version of a document (If-Match is optimistic concurrency, not last-write-wins);
- ``regressing_reads``: a read that started after another read *ended* must
  not return an older version (no going back in time between clients).

Loads are bounded by operation count, never by time.
"""

from __future__ import annotations

import bisect
import random
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field

from tests.e2e.conftest import Client

MERGE_PATCH = "application/merge-patch+json"


@dataclass(frozen=True)
class Op:
    kind: str  # "read" | "write"
    doc: str
    start: float
    end: float
    version: int  # observed (read) or acknowledged (write); 0 when there is none
    status: int
    cache: str = ""  # X-Cache of a read


@dataclass
class Load:
    """Mixed reads/writes from ``threads`` clients, at most ``ops_per_thread`` each.

    ``run()`` blocks; ``start()``/``join()`` run it in the background so a test
    can break things while it goes (``stop`` ends it early, ``done`` counts ops).
    """

    client: Client
    doc_ids: list[str]
    threads: int
    ops_per_thread: int
    write_ratio: float
    seed: int
    history: list[Op] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)
    errors: list[BaseException] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _pool: list[threading.Thread] = field(default_factory=list)

    @property
    def done(self) -> int:
        return len(self.history)

    def ops_since(self, t: float) -> list[Op]:
        with self._lock:
            return [op for op in self.history if op.start >= t]

    def _worker(self, n: int) -> None:
        rng = random.Random(self.seed * 1000 + n)
        etags: dict[str, str] = {}  # the latest ETag this client knows, per document
        try:
            for i in range(self.ops_per_thread):
                if self.stop.is_set():
                    return
                doc = rng.choice(self.doc_ids)
                if rng.random() < self.write_ratio and doc in etags:
                    op = self._write(doc, etags, f"t{n}-{i}")
                else:
                    op = self._read(doc, etags)
                with self._lock:
                    self.history.append(op)
        except BaseException as exc:  # surfaced by join()
            self.errors.append(exc)

    def _read(self, doc: str, etags: dict[str, str]) -> Op:
        start = time.monotonic()
        r = self.client.request("GET", f"/documents/{doc}")
        end = time.monotonic()
        version = 0
        if r.status == 200:
            body = r.json()
            version = body["version"]
            assert r.headers["etag"] == body["etag"], "ETag header and body disagree"
            etags[doc] = r.headers["etag"]
        return Op("read", doc, start, end, version, r.status, r.headers.get("x-cache", ""))

    def _write(self, doc: str, etags: dict[str, str], title: str) -> Op:
        start = time.monotonic()
        r = self.client.request(
            "PATCH",
            f"/documents/{doc}",
            {"title": title},
            headers={"Content-Type": MERGE_PATCH, "If-Match": etags[doc]},
        )
        end = time.monotonic()
        if "etag" in r.headers:  # 200: the new one; 412: the current one
            etags[doc] = r.headers["etag"]
        version = r.json()["version"] if r.status == 200 else 0
        return Op("write", doc, start, end, version, r.status)

    def start(self) -> Load:
        self._pool = [threading.Thread(target=self._worker, args=(n,)) for n in range(self.threads)]
        for t in self._pool:
            t.start()
        return self

    def join(self) -> list[Op]:
        for t in self._pool:
            t.join()
        if self.errors:
            raise self.errors[0]
        return sorted(self.history, key=lambda op: op.start)

    def run(self) -> list[Op]:
        return self.start().join()


def run_history(
    client: Client,
    doc_ids: list[str],
    *,
    threads: int,
    ops_per_thread: int,
    write_ratio: float,
    seed: int,
) -> list[Op]:
    return Load(client, doc_ids, threads, ops_per_thread, write_ratio, seed).run()


def _floor_by_end(ops: list[Op]) -> dict[str, tuple[list[float], list[int]]]:
    """Per document: ends sorted ascending, and the highest version acknowledged by then."""
    out: dict[str, tuple[list[float], list[int]]] = {}
    by_doc: dict[str, list[Op]] = defaultdict(list)
    for op in ops:
        by_doc[op.doc].append(op)
    for doc, items in by_doc.items():
        items.sort(key=lambda op: op.end)
        ends, floor, best = [], [], 0
        for op in items:
            best = max(best, op.version)
            ends.append(op.end)
            floor.append(best)
        out[doc] = (ends, floor)
    return out


def _violations(history: list[Op], sources: list[Op]) -> list[tuple[Op, int]]:
    """Successful reads that saw less than the best version ``sources`` had ended with."""
    floors = _floor_by_end(sources)
    bad = []
    for read in history:
        if read.kind != "read" or read.status != 200 or read.doc not in floors:
            continue
        ends, floor = floors[read.doc]
        i = bisect.bisect_left(ends, read.start)  # sources that ended strictly before
        if i and read.version < floor[i - 1]:
            bad.append((read, floor[i - 1]))
    return bad


def stale_reads(history: list[Op]) -> list[tuple[Op, int]]:
    """Reads that began after a write was acknowledged yet saw an older version
    (each with the version it should at least have seen)."""
    acked = [op for op in history if op.kind == "write" and op.status == 200]
    return _violations(history, acked)


def regressing_reads(history: list[Op]) -> list[tuple[Op, int]]:
    """Reads that began after another read had ended yet saw an older version."""
    seen = [op for op in history if op.kind == "read" and op.status == 200]
    return _violations(history, seen)


def lost_updates(history: list[Op]) -> list[tuple[str, int]]:
    """(doc, version) acknowledged to more than one conditional write."""
    counts: dict[tuple[str, int], int] = defaultdict(int)
    for op in history:
        if op.kind == "write" and op.status == 200:
            counts[(op.doc, op.version)] += 1
    return [key for key, n in counts.items() if n > 1]
