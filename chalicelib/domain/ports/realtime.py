"""The real-time ports: the connection registry, the poster, the read filter and
the fan-out's stream (docs/realtime.md)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager
from typing import Protocol

from chalicelib.domain.realtime import (
    CLOSE_GIVE_UP,
    Connection,
    Credentials,
    PostResult,
    StreamBatch,
    StreamStats,
    Topic,
)

TokenVerifier = Callable[[str, str | None], Credentials]
"""A bearer token (and the request id to log) to its credentials; ``Unauthorized``
when it is not valid.  The HTTP API's own verification (chalicelib/api/auth.py)."""


class ConnectionRegistry(Protocol):
    """Connections and their subscriptions (Redis with TTLs: docs/realtime.md).

    Every subscriber lookup is by org: a change of org A never finds a
    connection of org B."""

    def add(self, conn: Connection) -> None: ...

    def get(self, connection_id: str) -> Connection | None: ...

    def remove(self, connection_id: str) -> None:
        """Forget the connection and all its subscriptions."""

    def subscribe(self, conn: Connection, topic: Topic, cap: int) -> int:
        """Add the subscription; its number of subscriptions after it, or -1 (and
        nothing added) when it already holds ``cap``."""

    def unsubscribe(self, conn: Connection, topic: Topic) -> bool: ...

    def subscriptions(self, connection_id: str) -> set[Topic]: ...

    def subscribers(self, org: str, topics: list[Topic]) -> set[str]:
        """Ids of the connections of ``org`` subscribed to any of ``topics``."""

    def connections(self, ids: Iterable[str]) -> dict[str, Connection]:
        """The registered connections among ``ids`` (missing: gone or expired)."""

    def drop_document(self, org: str, doc_id: str) -> int:
        """Drop every subscription to a document of ``org`` (purge, erasure)."""

    def expired(self, now: float, limit: int) -> list[str]:
        """Ids of registered connections whose token expired by ``now`` (any org)."""

    def of_user(self, org: str, user: str) -> set[str]:
        """Ids of the connections ``user`` of ``org`` holds."""

    def revoke(self, org: str, user: str, at: float, ttl_s: int) -> None:
        """Record that tokens of ``user`` issued before ``at`` no longer open or keep
        a stream (kept ``ttl_s``: by then every such token has expired)."""

    def revoked_at(self, org: str, user: str) -> float | None: ...

    def revocations(self, since: float) -> list[tuple[str, str, float]]:
        """(org, user, at) of the revocations recorded after ``since``."""


class Poster(Protocol):
    """Sends frames to one connection (API Gateway's management API; locally the
    connection's bounded queue).  Never raises for a connection's own trouble."""

    def post(self, connection_id: str, data: str) -> PostResult: ...

    def owns(self, connection_id: str) -> bool:
        """Whether this poster's transport holds the connection (a local server
        shares its registry with others; API Gateway holds every connection)."""

    def close(
        self, connection_id: str, code: int = CLOSE_GIVE_UP, reason: str = "closed by the server"
    ) -> None:
        """Close a connection the server ends (it resumes from its cursor); ``code``
        and ``reason`` where the transport can choose them."""


class ReadFilter(Protocol):
    """Which of ``doc_ids`` (all of ``org``) a caller may read: the one seam where
    document-level rights (grants, private documents) narrow the org role."""

    def readable_ids(
        self, org: str, user: str, roles: frozenset[str], doc_ids: Iterable[str]
    ) -> set[str]: ...


class RealtimeStream(Protocol):
    """The outbox as the fan-out's stream: its own cursor, independent of the
    search sync's ``processed_at``."""

    def batch(self, limit: int) -> AbstractContextManager[StreamBatch]:
        """Committed rows after the cursor in (txid, seq) order, each marked ``safe``
        when every older transaction has finished (the rows above that horizon
        may still be joined by older ones); the cursor moves to ``advanced_to``
        when the block exits cleanly; one consumer holds the cursor at a time."""

    def stats(self) -> StreamStats: ...
