"""Mixed load for the fault campaign: writers and readers through the local server.

Writers create documents, merge-patch them with ``If-Match`` and now and then
delete one; every response the server *acknowledged* (201/200/204) is recorded
client-side (``acks``: the highest acknowledged version of each document, and
whether that acknowledgement was a delete).  A write whose outcome is unknown
(503, a dropped connection) leaves the document's ETag unknown: the writer
reads it again before writing to it.  Readers GET the known documents.  The
load is bounded by operation count and stopped by the fault when it is done
with it, never by a timer.
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from dataclasses import dataclass, field

from tests.e2e.conftest import Client, HttpResponse

MERGE_PATCH = "application/merge-patch+json"


@dataclass(frozen=True)
class Ack:
    version: int
    deleted: bool = False


@dataclass
class MixedLoad:
    client: Client
    writers: int = 3
    readers: int = 2
    max_ops: int = 2000  # per thread: a bound, not a target (the fault stops the load)
    seed: int = 7
    pause_s: float = 0.02  # between a client's operations: a few hundred writes per fault
    acks: dict[str, Ack] = field(default_factory=dict)
    statuses: Counter[int] = field(default_factory=Counter)
    errors: list[BaseException] = field(default_factory=list)
    # what no fault may cause: a failure that is not problem+json with Retry-After, and
    # a read older than a write acknowledged before the read was sent
    bad_failures: list[str] = field(default_factory=list)
    stale_reads: list[str] = field(default_factory=list)
    acked_at: list[float] = field(default_factory=list)  # monotonic time of each acked write
    failed_at: list[float] = field(default_factory=list)  # ... of each 5xx or dropped request
    stop: threading.Event = field(default_factory=threading.Event)
    _known: list[str] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _threads: list[threading.Thread] = field(default_factory=list)

    # -- bookkeeping -------------------------------------------------------------
    @property
    def ops(self) -> int:
        return sum(self.statuses.values())

    @property
    def acked_writes(self) -> int:
        with self._lock:
            return len(self.acks)

    def _seen(self, r: HttpResponse, method: str, path: str) -> None:
        with self._lock:
            self.statuses[r.status] += 1
            if r.status >= 500 and r.status != 599:
                kind = r.headers.get("content-type", "")
                if r.status != 503 or "retry-after" not in r.headers or "problem+json" not in kind:
                    self.bad_failures.append(f"{method} {path}: {r.status} {kind} {r.body[:120]!r}")
            if r.status >= 500:
                self.failed_at.append(time.monotonic())

    def first_ack_after(self, t: float) -> float | None:
        """The monotonic time of the first write acknowledged after ``t``."""
        with self._lock:
            return next((at for at in self.acked_at if at > t), None)

    def _ack(self, doc: str, version: int, *, deleted: bool = False) -> None:
        with self._lock:
            self.acked_at.append(time.monotonic())
            old = self.acks.get(doc)
            if old is None or version >= old.version:
                self.acks[doc] = Ack(version, deleted)

    def _request(self, method: str, path: str, body: object = None, **kw: object) -> HttpResponse:
        try:
            r = self.client.request(method, path, body, **kw)  # type: ignore[arg-type]
        except OSError:  # connection reset while a worker was busy failing over
            r = HttpResponse(599, {}, b"")
        self._seen(r, method, path)
        return r

    # -- the clients -----------------------------------------------------------------
    def _writer(self, n: int) -> None:
        rng = random.Random(self.seed * 100 + n)
        # own live documents: (ETag, version) last acknowledged, None when unknown
        etags: dict[str, tuple[str, int] | None] = {}
        try:
            for i in range(self.max_ops):
                if self.stop.wait(self.pause_s):
                    return
                if len(etags) < 3 or rng.random() < 0.2:
                    r = self._request(
                        "POST", "/documents", {"title": f"w{n}-{i}", "tags": [f"w{n}"]}
                    )
                    if r.status == 201:
                        doc = r.json()
                        etags[doc["id"]] = (r.headers["etag"], doc["version"])
                        self._ack(doc["id"], doc["version"])
                        with self._lock:
                            self._known.append(doc["id"])
                    continue
                doc_id = rng.choice(sorted(etags))
                known = etags[doc_id]
                if known is None:  # the last write's outcome is unknown: read first
                    r = self._request("GET", f"/documents/{doc_id}")
                    if r.status == 200:
                        etags[doc_id] = (r.headers["etag"], r.json()["version"])
                    elif r.status == 404:  # an unacknowledged delete did commit
                        del etags[doc_id]
                    continue
                etag, version = known
                if rng.random() < 0.05 and len(etags) > 3:
                    r = self._request("DELETE", f"/documents/{doc_id}", headers={"If-Match": etag})
                    if r.status == 204:  # a soft delete is the next version
                        del etags[doc_id]
                        self._ack(doc_id, version + 1, deleted=True)
                    else:
                        etags[doc_id] = None
                    continue
                r = self._request(
                    "PATCH",
                    f"/documents/{doc_id}",
                    {"title": f"p{n}-{i}", "body": {"i": i}},
                    headers={"Content-Type": MERGE_PATCH, "If-Match": etag},
                )
                if r.status == 200:
                    etags[doc_id] = (r.headers["etag"], r.json()["version"])
                    self._ack(doc_id, r.json()["version"])
                else:
                    etags[doc_id] = None
        except BaseException as exc:  # surfaced by join()
            self.errors.append(exc)

    def _reader(self, n: int) -> None:
        rng = random.Random(self.seed * 1000 + n)
        try:
            for _ in range(self.max_ops):
                if self.stop.wait(self.pause_s):
                    return
                with self._lock:
                    known = list(self._known[-50:])
                if not known:
                    self.stop.wait(0.01)
                    continue
                doc_id = rng.choice(known)
                with self._lock:
                    acked = self.acks.get(doc_id)
                r = self._request("GET", f"/documents/{doc_id}")
                if r.status == 200 and acked is not None and r.json()["version"] < acked.version:
                    with self._lock:
                        self.stale_reads.append(
                            f"{doc_id}: read version {r.json()['version']} after "
                            f"version {acked.version} was acknowledged ({r.headers.get('x-cache')})"
                        )
        except BaseException as exc:
            self.errors.append(exc)

    # -- control --------------------------------------------------------------------
    def start(self) -> MixedLoad:
        self._threads = [
            *(threading.Thread(target=self._writer, args=(n,)) for n in range(self.writers)),
            *(threading.Thread(target=self._reader, args=(n,)) for n in range(self.readers)),
        ]
        for t in self._threads:
            t.start()
        return self

    def finish(self) -> None:
        """Stop the clients and wait for them; raise what a client thread raised."""
        self.stop.set()
        for t in self._threads:
            t.join(60)
        if self.errors:
            raise self.errors[0]
