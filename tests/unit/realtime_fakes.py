"""In-memory fakes of the real-time ports (registry, poster, stream), for unit tests."""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

from chalicelib.domain.principal import Principal
from chalicelib.domain.realtime import (
    Connection,
    Credentials,
    PostResult,
    StreamBatch,
    StreamRow,
    StreamStats,
    Topic,
)
from tests.unit.fakes import FakeUnitOfWork


def live(who: Principal, ttl_s: float = 3600.0, *, now: float | None = None) -> Credentials:
    """Credentials of a token issued ``now`` that expires ``ttl_s`` later."""
    start = time.time() if now is None else now
    return Credentials(who, issued_at=start, expires_at=start + ttl_s)


class FakeRegistry:
    def __init__(self) -> None:
        self.conns: dict[str, Connection] = {}
        self.subs: dict[str, set[Topic]] = {}
        self.revoked: dict[tuple[str, str], float] = {}

    def add(self, conn: Connection) -> None:
        self.conns[conn.id] = conn
        self.subs.setdefault(conn.id, set())

    def get(self, connection_id: str) -> Connection | None:
        return self.conns.get(connection_id)

    def remove(self, connection_id: str) -> None:
        self.conns.pop(connection_id, None)
        self.subs.pop(connection_id, None)

    def subscribe(self, conn: Connection, topic: Topic, cap: int) -> int:
        held = self.subs.setdefault(conn.id, set())
        if topic not in held and len(held) >= cap:
            return -1
        held.add(topic)
        return len(held)

    def unsubscribe(self, conn: Connection, topic: Topic) -> bool:
        held = self.subs.get(conn.id, set())
        found = topic in held
        held.discard(topic)
        return found

    def subscriptions(self, connection_id: str) -> set[Topic]:
        return set(self.subs.get(connection_id, set()))

    def subscribers(self, org: str, topics: list[Topic]) -> set[str]:
        return {
            cid
            for cid, held in self.subs.items()
            if cid in self.conns and self.conns[cid].org == org and held & set(topics)
        }

    def connections(self, ids: Iterable[str]) -> dict[str, Connection]:
        return {i: self.conns[i] for i in ids if i in self.conns}

    def drop_document(self, org: str, doc_id: str) -> int:
        n = 0
        for cid, held in self.subs.items():
            conn = self.conns.get(cid)
            if conn is not None and conn.org == org and Topic("document", doc_id) in held:
                held.discard(Topic("document", doc_id))
                n += 1
        return n

    def expired(self, now: float, limit: int) -> list[str]:
        return sorted(i for i, c in self.conns.items() if c.expired(now))[:limit]

    def of_user(self, org: str, user: str) -> set[str]:
        return {i for i, c in self.conns.items() if (c.org, c.sub) == (org, user)}

    def revoke(self, org: str, user: str, at: float, ttl_s: int) -> None:
        self.revoked[(org, user)] = at

    def revoked_at(self, org: str, user: str) -> float | None:
        return self.revoked.get((org, user))

    def revocations(self, since: float) -> list[tuple[str, str, float]]:
        return [(o, u, at) for (o, u), at in self.revoked.items() if at > since]


class FakePoster:
    """Records frames; ``script`` answers the next posts of a connection."""

    def __init__(self) -> None:
        self.sent: dict[str, list[str]] = {}
        self.script: dict[str, list[PostResult]] = {}
        self.closed: list[str] = []
        self.codes: dict[str, tuple[int, str]] = {}

    def post(self, connection_id: str, data: str) -> PostResult:
        answers = self.script.get(connection_id)
        result: PostResult = answers.pop(0) if answers else "ok"
        if result == "ok":
            self.sent.setdefault(connection_id, []).append(data)
        return result

    def owns(self, connection_id: str) -> bool:
        return True

    def close(self, connection_id: str, code: int = 1011, reason: str = "") -> None:
        self.closed.append(connection_id)
        self.codes[connection_id] = (code, reason)


class FakeStream:
    """The fan-out's cursor over a ``FakeUnitOfWork``'s outbox (txid = seq)."""

    def __init__(self, uow: FakeUnitOfWork) -> None:
        self.uow = uow
        self.cursor = len(uow.outbox)  # a new consumer starts at the end: no history
        self.horizon: int | None = None  # rows from this seq on are not yet safe

    @contextmanager
    def batch(self, limit: int) -> Iterator[StreamBatch]:
        rows = [
            StreamRow(
                r.seq,
                r.seq,
                r.org,
                r.doc_id,
                r.version,
                r.op,
                r.created_at,
                self.horizon is None or r.seq < self.horizon,
            )
            for r in self.uow.outbox
            if r.seq > self.cursor
        ][:limit]
        tags = {}
        for r in rows:
            doc = self.uow.docs.get((r.org, r.doc_id))
            tags[(r.org, r.doc_id)] = list(doc.tags) if doc else []
        batch = StreamBatch(rows, tags)
        yield batch
        if batch.advanced_to is not None:
            self.cursor = batch.advanced_to[1]

    def stats(self) -> StreamStats:
        return StreamStats(0.0, len([r for r in self.uow.outbox if r.seq > self.cursor]))
