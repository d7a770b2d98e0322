"""Real-time use cases of a connection: connect, subscribe (with catch-up),
unsubscribe, re-auth, disconnect (docs/realtime.md); the fan-out that turns
outbox rows into ``change`` frames is ``service_layer/fanout.py``.

A stream lives no longer than its token
---------------------------------------
A connection is registered with its token's expiry (``exp`` plus the
verifier's leeway: when the HTTP API starts answering 401).  Every client
frame is checked against it, and against a revocation of the user (erasure)
that postdates the token; the fan-out closes what expired or was revoked at
the start of every batch, and checks again before it posts.  An in-band
``auth`` frame with a fresh token of the same user, org and roles moves the
expiry and keeps the subscriptions.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from chalicelib.domain.changes import FeedCursor, feed_sealer
from chalicelib.domain.errors import DomainError, Forbidden, Gone, Unauthorized
from chalicelib.domain.model import make_etag
from chalicelib.domain.ports.realtime import ConnectionRegistry, ReadFilter, TokenVerifier
from chalicelib.domain.ports.transaction import UnitOfWork
from chalicelib.domain.realtime import (
    CLOSE_EXPIRED,
    CLOSE_FORBIDDEN,
    EXPIRED_REASON,
    REVOKED_REASON,
    ClientFrame,
    Connection,
    Credentials,
    FrameError,
    Topic,
    change_frame,
    close_frame,
    may_read_org,
    parse_client_frame,
    topics_of,
)
from chalicelib.observability import count, logger
from chalicelib.settings_groups import RealtimeSettings

OTHER_USER = "the re-auth token is of another user or org: reconnect with it"
OTHER_ROLES = "the re-auth token has other roles: reconnect with it, resume from your last seq"


class RealtimeService:
    """What a connection does: connect, subscribe, unsubscribe, re-auth, disconnect.

    ``handle`` answers every client frame with frames for that connection only
    (an acknowledgement, catch-up changes, or an error); it never raises for a
    client's mistake, so one bad client cannot disturb another.  When the
    answers end with a ``close`` frame the transport closes the connection
    (``closing``): its token expired, was revoked, or was replaced by one of
    another user, org or roles."""

    def __init__(
        self,
        registry: ConnectionRegistry,
        uow: UnitOfWork,
        read_filter: ReadFilter,
        *,
        page_secret: str,
        settings: RealtimeSettings = RealtimeSettings(),
        error_frame: Callable[[DomainError], dict[str, Any]],
        verify: TokenVerifier | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.registry = registry
        self.uow = uow
        self.read_filter = read_filter
        self.sealer = feed_sealer(page_secret)
        self.verify = verify
        # a domain error as the edge states it (api/problems.py, error_frame_of)
        self.error_frame = error_frame
        self.revocation_ttl_s = settings.revocation_ttl_s
        self.max_subscriptions = settings.max_subscriptions
        self.catch_up_limit = settings.catch_up_limit
        self.clock = clock

    def connect(self, connection_id: str, creds: Credentials) -> Connection:
        """Register a connection of the token's org until the token expires;
        ``Forbidden`` without a read role, ``Unauthorized`` for a revoked token."""
        who = creds.who
        if not may_read_org(who.roles):
            raise Forbidden("Real-time updates need the 'reader' role.")
        now = self.clock()
        if now >= creds.expires_at:
            raise Unauthorized("The token has expired.")
        if self.revoked(who.org, who.sub, creds.issued_at):
            raise Unauthorized("The token was revoked; sign in again.")
        conn = Connection(connection_id, who.org, who.sub, who.roles, now,
                          creds.expires_at, creds.issued_at)  # fmt: skip
        self.registry.add(conn)
        count("RealtimeConnected")
        return conn

    def disconnect(self, connection_id: str) -> None:
        self.registry.remove(connection_id)

    def drop_document(self, org: str, doc_id: str) -> int:
        """Forget every subscription to a document (the purge calls this)."""
        return self.registry.drop_document(org, doc_id)

    def revoke_user(self, org: str, user: str) -> None:
        """End the streams of ``user`` (erasure): tokens issued until now no longer
        open or keep one; the fan-out closes the open ones in its next batch."""
        self.registry.revoke(org, user, self.clock(), self.revocation_ttl_s)

    def revoked(self, org: str, user: str, issued_at: float) -> bool:
        """Whether a token of ``user`` issued at ``issued_at`` was revoked since."""
        at = self.registry.revoked_at(org, user)
        return at is not None and issued_at < at

    def handle(self, connection_id: str, raw: str | bytes) -> list[dict[str, Any]]:
        """The frames to send back for one client frame."""
        try:
            return self._answer(connection_id, raw)
        except FrameError as exc:
            count("RealtimeBadFrames")
            return [exc.frame()]
        except DomainError as exc:  # a bad cursor, the registry or the database out
            return [self.error_frame(exc)]

    def _answer(self, connection_id: str, raw: str | bytes) -> list[dict[str, Any]]:
        conn = self.registry.get(connection_id)
        ended = self._out_of_time(conn) if conn is not None else None
        if ended is not None:  # every frame, whatever it says, meets the token's limits
            return ended
        frame = parse_client_frame(raw)
        if frame.action == "ping":
            return [{"type": "pong"}]
        if conn is None:
            raise FrameError(
                401, "Not connected",
                "This connection is not registered (it expired or the registry lost it): "
                "reconnect, subscribe again and resume from your last seq.",
            )  # fmt: skip
        if frame.action == "auth":
            assert frame.token is not None
            return self._reauth(conn, frame.token)
        if frame.action == "subscribe":
            return self._subscribe(conn, frame)
        assert frame.topic is not None
        removed = self.registry.unsubscribe(conn, frame.topic)
        return [{"type": "unsubscribed", **frame.topic.as_dict(), "removed": removed}]

    def _out_of_time(self, conn: Connection) -> list[dict[str, Any]] | None:
        """The close frame of a connection whose token expired or was revoked."""
        if conn.expired(self.clock()):
            return self._end(conn, CLOSE_EXPIRED, EXPIRED_REASON)
        if self.revoked(conn.org, conn.sub, conn.issued_at):
            return self._end(conn, CLOSE_EXPIRED, REVOKED_REASON)
        return None

    def _end(self, conn: Connection, code: int, reason: str) -> list[dict[str, Any]]:
        """Forget the connection; the transport sends the close frame and closes."""
        logger.info("realtime connection ended", connection=conn.id, code=code)
        self.registry.remove(conn.id)
        return [close_frame(code, reason)]

    def _reauth(self, conn: Connection, token: str) -> list[dict[str, Any]]:
        """A fresh token moves the connection's expiry; its subscriptions stay.

        An invalid token is refused with a 401 error frame and changes nothing
        (the connection lives on until its current token expires).  A valid one
        of another user or org, or with other roles, ends the connection: what a
        connection is never changes while it lives, and a reconnect with the new
        token (resuming from the last ``seq``) loses nothing."""
        if self.verify is None:
            raise FrameError(501, "Not available", "This server cannot verify tokens in-band.")
        try:
            creds = self.verify(token, conn.id)
        except Unauthorized as exc:
            raise FrameError(401, "Not authenticated", exc.detail) from None
        who = creds.who
        if (who.org, who.sub) != (conn.org, conn.sub):
            return self._end(conn, CLOSE_FORBIDDEN, OTHER_USER)
        if self.revoked(who.org, who.sub, creds.issued_at):
            return self._end(conn, CLOSE_EXPIRED, REVOKED_REASON)
        if who.roles != conn.roles:
            return self._end(conn, CLOSE_FORBIDDEN, OTHER_ROLES)
        if self.clock() >= creds.expires_at:
            raise FrameError(401, "Not authenticated", "The token has expired.")
        self.registry.add(replace(conn, expires_at=creds.expires_at, issued_at=creds.issued_at))
        return [{"type": "authenticated", "expires_at": creds.expires_at}]

    def _subscribe(self, conn: Connection, frame: ClientFrame) -> list[dict[str, Any]]:
        topic = frame.topic
        assert topic is not None
        if topic.kind == "document":
            self._check_readable(conn, topic.value)
        since = None
        if frame.since is not None:
            since = FeedCursor.parse(frame.since, conn.org, self.sealer)  # 400 if not ours
        held = self.registry.subscribe(conn, topic, self.max_subscriptions)
        if held < 0:
            raise FrameError(
                422, "Too many subscriptions",
                f"A connection holds at most {self.max_subscriptions} subscriptions; "
                "unsubscribe first, or subscribe to a tag or the whole org instead.",
            )  # fmt: skip
        frames: list[dict[str, Any]] = []
        ack: dict[str, Any] = {"type": "subscribed", **topic.as_dict(), "subscriptions": held}
        if since is not None:  # registered first: what commits from now on comes live
            frames, nxt, more = self._catch_up(conn, topic, since)
            ack.update(next=nxt, more=more)
        return [*frames, ack]

    def _check_readable(self, conn: Connection, doc_id: str) -> None:
        doc = self.uow.read_document(conn.org, doc_id)
        visible = doc is not None and not doc.deleted
        if not visible or not self.read_filter.readable_ids(
            conn.org, conn.sub, conn.roles, [doc_id]
        ):
            # another org's document, a missing one and an unreadable one look the same
            raise FrameError(404, "Not found", f"No document {doc_id!r}.")

    def _catch_up(
        self, conn: Connection, topic: Topic, since: FeedCursor
    ) -> tuple[list[dict[str, Any]], str, bool]:
        """The changes after ``since`` that the topic covers: frames, next cursor, and
        whether more remain (then the client reads GET /changes from ``next``)."""
        try:
            with self.uow.transaction(conn.org) as tx:
                rows, nxt = tx.change_feed.changes(since, self.catch_up_limit)
                tags: dict[str, list[str]] = {}
                if topic.kind == "tag":
                    for doc_id in {r.doc_id for r in rows}:
                        doc = tx.documents.get(doc_id)
                        tags[doc_id] = list(doc.tags) if doc is not None else []
        except Gone as exc:
            raise FrameError(410, "Cursor too old", exc.detail) from None
        wanted = [r for r in rows if topic in topics_of(r.doc_id, tags.get(r.doc_id, []))]
        readable = self.read_filter.readable_ids(
            conn.org, conn.sub, conn.roles, {r.doc_id for r in wanted}
        )
        frames = [
            change_frame(
                r.doc_id, r.version, make_etag(conn.org, r.doc_id, r.version), r.op != "upsert",
                FeedCursor(r.txid, r.seq).encode(conn.org, self.sealer),
            )
            for r in wanted
            if r.doc_id in readable
        ]  # fmt: skip
        return frames, nxt.encode(conn.org, self.sealer), len(rows) >= self.catch_up_limit
