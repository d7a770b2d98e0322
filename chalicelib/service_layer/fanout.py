"""The real-time fan-out: turns outbox rows into ``change`` frames for the
subscribed connections (docs/realtime.md).

The fan-out is another consumer of the outbox, with its own cursor
(``RealtimeStream``), so neither it nor the search sync can delay the other.

Why it delivers what it should, and only that
---------------------------------------------
* At least once: the cursor moves only after the batch was handed to every
  subscriber (posted, or the connection given up on); a crash mid-batch sends
  it again.  Frames carry the version, so a client drops duplicates.
* Per-document order: rows come in (txid, seq) order of finished
  transactions; within a batch a document's rows go out by version, and a row
  older than one this process already sent for that document is dropped.
  Each connection's frames are posted one after the other, in that order.
* Never to another org: subscribers are looked up by the change's org, and
  every connection's registered org is compared with it again before a frame
  is built.  Then the ``ReadFilter`` keeps what each subscriber may read.
* A slow or dead client never blocks the others: ``gone`` connections are
  dropped from the registry; throttled or failing posts are retried with
  exponential backoff and full jitter a few times, then the server closes that
  connection (it reconnects and resumes from its last ``seq``) and the batch
  goes on.  Posts to different connections run in parallel.
* Bounded work: ``batch_size`` rows per batch, and ``drain`` stops at a deadline.

Streams end with their token: at the start of every batch the fan-out closes
the connections whose token expired or whose user was revoked (any org), and
it checks the expiry again before it posts to a connection.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict, defaultdict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime

from chalicelib.domain.changes import FeedCursor, feed_sealer
from chalicelib.domain.errors import DomainError
from chalicelib.domain.model import make_etag
from chalicelib.domain.ports.realtime import ConnectionRegistry, Poster, ReadFilter, RealtimeStream
from chalicelib.domain.realtime import (
    CLOSE_EXPIRED,
    EXPIRED_REASON,
    REVOKED_REASON,
    Connection,
    StreamRow,
    change_frame,
    close_frame,
    encode,
    per_connection,
    topics_of,
)
from chalicelib.observability import count, logger, milliseconds
from chalicelib.service_layer.retry import full_jitter
from chalicelib.settings_groups import RealtimeSettings

REVOCATION_OVERLAP_S = 60.0  # revocations read again (the clocks of writers disagree)


@dataclass
class FanOutReport:
    rows: int = 0
    frames: int = 0  # frames posted successfully
    connections: int = 0  # connections that were sent something
    gone: int = 0
    dropped: int = 0  # connections closed after failed retries
    refused: int = 0  # frames refused because a connection's org did not match
    batches: int = 0
    expired: int = 0  # connections closed because their token expired
    revoked: int = 0  # connections closed because their user's tokens were revoked
    age_ms: float = 0.0  # the oldest new row's age when its batch was read (the worst pickup)
    advanced: int = 0  # batches that moved the cursor

    def add(self, other: FanOutReport) -> None:
        for name in self.__dict__:
            if name == "age_ms":
                self.age_ms = max(self.age_ms, other.age_ms)
            else:
                setattr(self, name, getattr(self, name) + getattr(other, name))

    def as_dict(self) -> dict[str, float]:
        return dict(self.__dict__)


class FanOut:
    """The outbox consumer that posts ``change`` frames to subscribed connections."""

    def __init__(
        self,
        stream: RealtimeStream,
        registry: ConnectionRegistry,
        poster: Poster,
        read_filter: ReadFilter,
        *,
        page_secret: str,
        settings: RealtimeSettings = RealtimeSettings(),
        retry_base_s: float = 0.05,
        retry_cap_s: float = 1.0,
        conn_cache_s: float = 30.0,
        sweep_limit: int = 1000,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.stream = stream
        self.registry = registry
        self.poster = poster
        self.read_filter = read_filter
        self.sealer = feed_sealer(page_secret)
        self.batch_size = settings.batch_size
        self.max_attempts = settings.post_attempts
        self.retry_base_s = retry_base_s
        self.retry_cap_s = retry_cap_s
        self.parallel = settings.parallel_posts
        self.sleep = sleep
        # per document: the newest version sent, and the connections it went to (a row
        # above the horizon is read again: a subscriber that came since still gets it)
        self._sent: OrderedDict[tuple[str, str], tuple[int, frozenset[str]]] = OrderedDict()
        self._pool: ThreadPoolExecutor | None = None
        self._conns: dict[str, tuple[float, Connection]] = {}  # id -> (until, connection)
        self.conn_cache_s = conn_cache_s
        self.sweep_limit = sweep_limit
        self.clock = clock
        self._revocations_seen = -math.inf  # a new process applies every recorded one

    # -- the consumer -----------------------------------------------------------------
    def run_once(self) -> FanOutReport:
        """One batch.  Rows of transactions younger than the stream's horizon (an
        older transaction still runs, e.g. another consumer's claim) are sent as
        soon as they are visible, but the cursor moves only over the rows below the
        horizon: such rows are read again until it does, and then go only to the
        subscribers that came since (this process remembers the newest version it
        sent per document, and to whom)."""
        report = FanOutReport(batches=1)
        self._sweep(report)
        with self.stream.batch(self.batch_size) as batch:
            if not batch.rows:
                return report
            report.rows = len(batch.rows)
            # new versions, and those sent already but read again (above the horizon)
            pending = [r for r in batch.rows if r.version >= self._sent_version(r.org, r.doc_id)]
            fresh = [r for r in pending if r.version > self._sent_version(r.org, r.doc_id)]
            if fresh:
                report.age_ms = round(_age_ms(min(r.created_at for r in fresh)), 1)
            if pending:
                frames, newest = self._frames(pending, batch.tags, report)
                self._deliver(frames, report)
                for key, sent in newest.items():  # only once handed over
                    self._remember(key, *sent)
            safe = [r for r in batch.rows if r.safe]  # a prefix: rows come in txid order
            if safe:
                batch.advance(safe[-1].txid, safe[-1].seq)
                report.advanced = 1
        if fresh:
            milliseconds("RealtimeDeliveryLag", report.age_ms)
        if report.frames:
            count("RealtimeFramesSent", report.frames)
        return report

    def drain(self, *, deadline: float | None = None, max_batches: int = 1000) -> FanOutReport:
        """Batches until the stream is caught up (or the ``time.monotonic`` deadline)."""
        total = FanOutReport()
        for _ in range(max_batches):
            report = self.run_once()
            total.add(report)
            if report.rows < self.batch_size or not report.advanced:
                break  # caught up, or only rows above the horizon: wait for it
            if deadline is not None and time.monotonic() >= deadline:
                break
        return total

    def stats(self) -> dict[str, float | int]:
        stats = self.stream.stats()
        milliseconds("RealtimeLag", stats.lag_s * 1000)
        return {"lag_s": stats.lag_s, "backlog": stats.backlog}

    # -- building frames ----------------------------------------------------------------
    def _frames(
        self, rows: list[StreamRow], tags: dict[tuple[str, str], list[str]], report: FanOutReport
    ) -> tuple[dict[str, list[str]], dict[tuple[str, str], tuple[int, frozenset[str]]]]:
        """Frames per connection, and the newest version of each document in them with
        the connections it went to.  A version already sent (a row read again while
        it waits above the horizon) goes only to subscribers that were not sent it:
        one who subscribed meanwhile gets it live, since the feed its catch-up read
        stops at the horizon."""
        by_doc: dict[tuple[str, str], list[StreamRow]] = defaultdict(list)
        for row in rows:
            by_doc[(row.org, row.doc_id)].append(row)
        subscribers: dict[tuple[str, str], set[str]] = {}
        for key in by_doc:
            org, doc_id = key
            subscribers[key] = self.registry.subscribers(org, topics_of(doc_id, tags.get(key, [])))
        conns = self._live(self._connections(set().union(*subscribers.values())), report)
        readable = self._readable(subscribers, conns)
        out: list[tuple[str, str]] = []
        newest: dict[tuple[str, str], tuple[int, frozenset[str]]] = {}
        for key, doc_rows in by_doc.items():
            org, doc_id = key
            before_version, before_to = self._sent.get(key, (0, frozenset()))
            for row in sorted(doc_rows, key=lambda r: r.version):
                if row.version <= newest.get(key, (0, frozenset()))[0]:
                    continue  # a duplicate row of a version already in this batch
                already = before_to if row.version == before_version else frozenset()
                newest[key] = (row.version, already | subscribers[key])
                data = encode(change_frame(
                    doc_id, row.version, make_etag(org, doc_id, row.version),
                    row.op != "upsert", FeedCursor(*row.resume).encode(org, self.sealer),
                ))  # fmt: skip
                for conn_id in sorted(subscribers[key] - already):
                    conn = conns.get(conn_id)
                    if conn is None:
                        continue  # gone or expired: its topic entries expire with it
                    if conn.org != org:  # cannot happen with a sound registry: refuse anyway
                        report.refused += 1
                        logger.error("realtime org mismatch refused", connection=conn_id)
                        continue
                    if doc_id in readable.get(conn_id, ()):
                        out.append((conn_id, data))
        return per_connection(iter(out)), newest

    def _readable(
        self, subscribers: dict[tuple[str, str], set[str]], conns: dict[str, Connection]
    ) -> dict[str, set[str]]:
        """Per connection, the documents of this batch it may read: one ReadFilter call
        per (org, user, roles), not per connection."""
        docs_of: dict[tuple[str, str, frozenset[str]], set[str]] = defaultdict(set)
        members: dict[tuple[str, str, frozenset[str]], list[str]] = defaultdict(list)
        for (org, doc_id), ids in subscribers.items():
            for conn_id in ids:
                conn = conns.get(conn_id)
                if conn is not None and conn.org == org:
                    docs_of[(org, conn.sub, conn.roles)].add(doc_id)
        for conn_id, conn in conns.items():
            members[(conn.org, conn.sub, conn.roles)].append(conn_id)
        out: dict[str, set[str]] = {}
        for who, doc_ids in docs_of.items():
            allowed = self.read_filter.readable_ids(who[0], who[1], who[2], doc_ids)
            for conn_id in members[who]:
                out[conn_id] = allowed
        return out

    def _connections(self, ids: set[str]) -> dict[str, Connection]:
        """The registered connections among ``ids``.  What a connection is (org, user,
        roles) never changes after connect, so it is kept for ``conn_cache_s``:
        only ids not seen lately are read from the registry.  Who is subscribed
        is never cached (the topic sets are read every batch)."""
        now = time.monotonic()
        out: dict[str, Connection] = {}
        missing = set()
        for conn_id in ids:
            hit = self._conns.get(conn_id)
            if hit is not None and hit[0] > now:
                out[conn_id] = hit[1]
            else:
                missing.add(conn_id)
        if missing:
            for conn_id, conn in self.registry.connections(missing).items():
                out[conn_id] = conn
                self._conns[conn_id] = (now + self.conn_cache_s, conn)
            while len(self._conns) > 100_000:
                self._conns.pop(next(iter(self._conns)))
        return out

    # -- ending streams ---------------------------------------------------------------
    def _sweep(self, report: FanOutReport) -> None:
        """Close the connections whose token expired, and those of users whose tokens
        were revoked since they connected (any org: both lists are global)."""
        ended: dict[str, tuple[int, str]] = {}
        for conn_id in self.registry.expired(self.clock(), self.sweep_limit):
            ended[conn_id] = (CLOSE_EXPIRED, EXPIRED_REASON)
        revocations = self.registry.revocations(self._revocations_seen - REVOCATION_OVERLAP_S)
        for org, user, at in revocations:
            held = self.registry.connections(self.registry.of_user(org, user))
            for conn_id, conn in held.items():
                if conn.issued_at < at:
                    ended[conn_id] = (CLOSE_EXPIRED, REVOKED_REASON)
            self._revocations_seen = max(self._revocations_seen, at)
        for conn_id, (code, reason) in ended.items():
            if self.poster.owns(conn_id):
                self._end(conn_id, code, reason)
                if reason == REVOKED_REASON:
                    report.revoked += 1
                else:
                    report.expired += 1

    def _live(self, conns: dict[str, Connection], report: FanOutReport) -> dict[str, Connection]:
        """``conns`` without those whose token expired (the cache may hold an expiry
        a re-auth has moved since: those are read again before they are closed)."""
        now = self.clock()
        stale = {conn_id for conn_id, conn in conns.items() if conn.expired(now)}
        if not stale:
            return conns
        fresh = self.registry.connections(stale)
        live = {conn_id: conn for conn_id, conn in conns.items() if conn_id not in stale}
        for conn_id in stale:
            conn = fresh.get(conn_id)
            if conn is not None and not conn.expired(now):
                live[conn_id] = conn
                self._conns[conn_id] = (time.monotonic() + self.conn_cache_s, conn)
            elif self.poster.owns(conn_id):
                self._end(conn_id, CLOSE_EXPIRED, EXPIRED_REASON)
                report.expired += 1
        return live

    def _end(self, conn_id: str, code: int, reason: str) -> None:
        """Tell the client why (API Gateway chooses the close code of a
        ``delete_connection``), close it, and forget it."""
        logger.info("realtime connection ended", connection=conn_id, code=code)
        self.poster.post(conn_id, encode(close_frame(code, reason)))
        self.poster.close(conn_id, code, reason)
        self._forget(conn_id)

    def _sent_version(self, org: str, doc_id: str) -> int:
        return self._sent.get((org, doc_id), (0, frozenset()))[0]

    def _remember(self, key: tuple[str, str], version: int, to: frozenset[str]) -> None:
        self._sent[key] = (version, to)
        self._sent.move_to_end(key)
        if len(self._sent) > 50_000:
            self._sent.popitem(last=False)

    # -- posting ----------------------------------------------------------------------
    def _deliver(self, frames: dict[str, list[str]], report: FanOutReport) -> None:
        if not frames:
            return
        items = list(frames.items())
        if self.parallel > 1 and len(items) > 1:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self.parallel, thread_name_prefix="fanout")
            results = list(self._pool.map(lambda kv: self._post_all(*kv), items))
        else:
            results = [self._post_all(conn_id, data) for conn_id, data in items]
        for sent, outcome in results:
            report.frames += sent
            report.connections += 1
            if outcome == "gone":
                report.gone += 1
            elif outcome == "dropped":
                report.dropped += 1
        if report.gone:
            count("RealtimeGone", report.gone)
        if report.dropped:
            count("RealtimeDropped", report.dropped)

    def _post_all(self, conn_id: str, frames: list[str]) -> tuple[int, str]:
        """Post one connection's frames in order: (frames sent, 'ok'|'gone'|'dropped')."""
        sent = 0
        for data in frames:
            attempt = 0
            while True:
                result = self.poster.post(conn_id, data)
                if result == "ok":
                    sent += 1
                    break
                if result == "gone":
                    self._forget(conn_id)
                    return sent, "gone"
                attempt += 1
                if attempt >= self.max_attempts:
                    logger.warning("realtime connection dropped", connection=conn_id, last=result)
                    self.poster.close(conn_id)
                    self._forget(conn_id)
                    return sent, "dropped"
                count("RealtimeThrottled" if result == "throttled" else "RealtimePostErrors")
                self.sleep(full_jitter(attempt, self.retry_base_s, self.retry_cap_s))
        return sent, "ok"

    def _forget(self, conn_id: str) -> None:
        self._conns.pop(conn_id, None)
        try:
            self.registry.remove(conn_id)
        except DomainError:  # the registry's TTL forgets it anyway
            logger.warning("realtime registry remove failed", connection=conn_id)


def _age_ms(created_at: datetime) -> float:
    return max(0.0, (datetime.now(UTC) - created_at).total_seconds() * 1000)
