"""The real-time connection registry in Redis (``ConnectionRegistry``).

Keys (the process's ``KeyNamespace`` + ``rt:``, parts joined with ``join_key``;
org-scoped where they index by topic or user):

* ``rt:c:{id}``        hash: the connection's org, subject, roles, connect time,
                       its token's issue and expiry times
* ``rt:s:{id}``        set: its subscriptions (topic keys)
* ``rt:t:{org,topic}`` set: the connections of ``org`` subscribed to ``topic``
* ``rt:u:{org,user}``  set: the connections of one user of ``org``
* ``rt:x``             sorted set: connection ids by their token's expiry
* ``rt:r:{org,user}``  when the user's tokens were last revoked (erasure)
* ``rt:rl``            sorted set: revoked (org, user) by time, for the fan-outs

Every key carries a TTL (``DOCS_REALTIME_CONNECTION_TTL_S``, API Gateway's
2 h connection limit by default), refreshed on subscribe, so a connection
whose ``$disconnect`` never arrived is forgotten by itself; topic sets may
hold ids of such connections until then, and the fan-out skips ids whose
hash is gone.  Only single-key commands and non-transactional pipelines are
used (no multi-key scripts), so the keys need no common hash slot.

Failure modes (docs/realtime.md): Redis unreachable raises
``DependencyUnavailable``: ``$connect`` answers 503 (the client retries),
a subscribe gets a 503 error frame, and a fan-out batch fails without moving
its cursor (it is sent again once Redis answers: nothing is lost, only late).
Redis losing data (failover, eviction) forgets connections: their frames
stop, a client's next frame gets a 401 error frame ("not registered"), and
clients resubscribe and resume from their last ``seq``.  The per-connection
cap is checked without a lock: concurrent subscribes of one connection may
pass it by a few.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

import redis

from chalicelib.adapters.redis.namespace import KeyNamespace
from chalicelib.domain.errors import DependencyUnavailable
from chalicelib.domain.keys import join_key, split_key
from chalicelib.domain.realtime import Connection, Topic
from chalicelib.observability import subsegment

T = TypeVar("T")


class RedisConnectionRegistry:
    def __init__(
        self, client: redis.Redis[bytes], namespace: KeyNamespace, *, ttl_s: int = 7200
    ) -> None:
        self.client = client
        self.namespace = namespace
        self.ttl_s = ttl_s

    # -- keys -------------------------------------------------------------------------
    def _conn_key(self, connection_id: str) -> str:
        return f"{self.namespace.prefix}rt:c:{join_key(connection_id)}"

    def _subs_key(self, connection_id: str) -> str:
        return f"{self.namespace.prefix}rt:s:{join_key(connection_id)}"

    def _topic_key(self, org: str, topic: Topic) -> str:
        return f"{self.namespace.prefix}rt:t:{join_key(org, topic.kind, topic.value)}"

    def _user_key(self, org: str, user: str) -> str:
        return f"{self.namespace.prefix}rt:u:{join_key(org, user)}"

    def _revoked_key(self, org: str, user: str) -> str:
        return f"{self.namespace.prefix}rt:r:{join_key(org, user)}"

    @property
    def _expiry_key(self) -> str:
        return f"{self.namespace.prefix}rt:x"

    @property
    def _revocations_key(self) -> str:
        return f"{self.namespace.prefix}rt:rl"

    def _call(self, op: str, fn: Callable[[], T]) -> T:
        try:
            with subsegment(f"redis.realtime.{op}"):
                return fn()
        except (redis.RedisError, OSError) as exc:
            raise DependencyUnavailable(
                "The real-time registry is unavailable; retry shortly.", retry_after_s=2
            ) from exc

    # -- connections ------------------------------------------------------------------
    def add(self, conn: Connection) -> None:
        def run() -> None:
            pipe = self.client.pipeline(transaction=False)
            key = self._conn_key(conn.id)
            pipe.hset(key, mapping={"org": conn.org, "sub": conn.sub,
                                    "roles": " ".join(sorted(conn.roles)),
                                    "at": repr(conn.connected_at),
                                    "exp": repr(conn.expires_at),
                                    "iat": repr(conn.issued_at)})  # fmt: skip
            pipe.expire(key, self.ttl_s)
            user = self._user_key(conn.org, conn.sub)
            pipe.sadd(user, conn.id)
            pipe.expire(user, self.ttl_s)
            if math.isfinite(conn.expires_at):
                pipe.zadd(self._expiry_key, {conn.id: conn.expires_at})
                pipe.expire(self._expiry_key, self.ttl_s)
            pipe.execute()

        self._call("add", run)

    def get(self, connection_id: str) -> Connection | None:
        raw = self._call("get", lambda: self.client.hgetall(self._conn_key(connection_id)))
        return _connection(connection_id, raw)

    def connections(self, ids: Iterable[str]) -> dict[str, Connection]:
        wanted = sorted(set(ids))
        if not wanted:
            return {}

        def run() -> list[Any]:
            pipe = self.client.pipeline(transaction=False)
            for conn_id in wanted:
                pipe.hgetall(self._conn_key(conn_id))
            return pipe.execute()

        found = self._call("connections", run)
        out = {}
        for conn_id, raw in zip(wanted, found, strict=True):
            conn = _connection(conn_id, raw)
            if conn is not None:
                out[conn_id] = conn
        return out

    def remove(self, connection_id: str) -> None:
        conn = self.get(connection_id)
        topics = self.subscriptions(connection_id)

        def run() -> None:
            pipe = self.client.pipeline(transaction=False)
            if conn is not None:
                for topic in topics:
                    pipe.srem(self._topic_key(conn.org, topic), connection_id)
                pipe.srem(self._user_key(conn.org, conn.sub), connection_id)
            pipe.delete(self._conn_key(connection_id), self._subs_key(connection_id))
            pipe.zrem(self._expiry_key, connection_id)
            pipe.execute()

        self._call("remove", run)

    # -- subscriptions ------------------------------------------------------------------
    def subscribe(self, conn: Connection, topic: Topic, cap: int) -> int:
        subs = self._subs_key(conn.id)

        def run() -> int:
            pipe = self.client.pipeline(transaction=False)
            pipe.sismember(subs, topic.key)
            pipe.scard(subs)
            member, held = pipe.execute()
            if not member and int(held) >= cap:
                return -1
            pipe = self.client.pipeline(transaction=False)
            pipe.sadd(subs, topic.key)
            pipe.sadd(self._topic_key(conn.org, topic), conn.id)
            keys = (subs, self._topic_key(conn.org, topic), self._conn_key(conn.id),
                    self._user_key(conn.org, conn.sub), self._expiry_key)  # fmt: skip
            for key in keys:
                pipe.expire(key, self.ttl_s)
            pipe.scard(subs)
            return int(pipe.execute()[-1])

        return self._call("subscribe", run)

    def unsubscribe(self, conn: Connection, topic: Topic) -> bool:
        def run() -> bool:
            pipe = self.client.pipeline(transaction=False)
            pipe.srem(self._subs_key(conn.id), topic.key)
            pipe.srem(self._topic_key(conn.org, topic), conn.id)
            return bool(pipe.execute()[0])

        return self._call("unsubscribe", run)

    def subscriptions(self, connection_id: str) -> set[Topic]:
        key = self._subs_key(connection_id)
        raw = self._call("subscriptions", lambda: self.client.smembers(key))
        out = set()
        for member in raw:
            try:
                out.add(Topic.from_key(_text(member)))
            except ValueError:
                continue
        return out

    def subscribers(self, org: str, topics: list[Topic]) -> set[str]:
        def run() -> list[Any]:
            pipe = self.client.pipeline(transaction=False)
            for topic in topics:
                pipe.smembers(self._topic_key(org, topic))
            return pipe.execute()

        return {_text(m) for members in self._call("subscribers", run) for m in members}

    def drop_document(self, org: str, doc_id: str) -> int:
        """Drop every subscription to a document of ``org`` (purge, erasure)."""
        topic = Topic("document", doc_id)
        key = self._topic_key(org, topic)
        members = self._call("drop_document", lambda: self.client.smembers(key))

        def run() -> None:
            pipe = self.client.pipeline(transaction=False)
            for member in members:
                pipe.srem(self._subs_key(_text(member)), topic.key)
            pipe.delete(key)
            pipe.execute()

        self._call("drop_document", run)
        return len(members)

    # -- expiry and revocation ------------------------------------------------------------
    def expired(self, now: float, limit: int) -> list[str]:
        key = self._expiry_key
        raw = self._call("expired", lambda: self.client.zrangebyscore(key, "-inf", now, 0, limit))
        return [_text(m) for m in raw]

    def of_user(self, org: str, user: str) -> set[str]:
        key = self._user_key(org, user)
        return {_text(m) for m in self._call("of_user", lambda: self.client.smembers(key))}

    def revoke(self, org: str, user: str, at: float, ttl_s: int) -> None:
        def run() -> None:
            pipe = self.client.pipeline(transaction=False)
            pipe.set(self._revoked_key(org, user), repr(at), ex=ttl_s)
            pipe.zadd(self._revocations_key, {join_key(org, user): at})
            pipe.zremrangebyscore(self._revocations_key, "-inf", at - ttl_s)
            pipe.expire(self._revocations_key, ttl_s)
            pipe.execute()

        self._call("revoke", run)

    def revoked_at(self, org: str, user: str) -> float | None:
        raw = self._call("revoked_at", lambda: self.client.get(self._revoked_key(org, user)))
        return float(_text(raw)) if raw else None

    def revocations(self, since: float) -> list[tuple[str, str, float]]:
        key = self._revocations_key
        raw = self._call(
            "revocations",
            lambda: self.client.zrangebyscore(key, f"({since!r}", "+inf", withscores=True),
        )
        out = []
        for member, score in raw:
            try:
                org, user = split_key(_text(member))
            except ValueError:
                continue
            out.append((org, user, float(score)))
        return out


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _connection(connection_id: str, raw: dict[Any, Any]) -> Connection | None:
    if not raw:
        return None
    data = {_text(k): _text(v) for k, v in raw.items()}
    if "org" not in data or "sub" not in data:
        return None
    return Connection(
        connection_id, data["org"], data["sub"], frozenset(data.get("roles", "").split()),
        float(data.get("at") or 0.0), float(data.get("exp") or math.inf),
        float(data.get("iat") or 0.0),
    )  # fmt: skip
