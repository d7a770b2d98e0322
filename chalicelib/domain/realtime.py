"""Real-time updates: subscriptions and the frames of the WebSocket protocol
(docs/realtime.md; the ports the real-time use cases depend on:
domain/ports/realtime.py).

The protocol is the same in AWS (API Gateway WebSocket API) and locally (the
local server's ``/realtime``): a client subscribes to a document, a tag or its
whole org, and receives ``change`` frames that carry ids and versions only.
The body never travels in a frame: a frame is fanned out to many connections
whose read rights were checked at fan-out time, API Gateway caps a frame at
128 KiB, and the document is a cache hit for the GET that follows (the write
path has just published it).  Every frame the server sends is a JSON object
with a ``type``; client mistakes get an ``error`` frame shaped like the HTTP
API's problem+json, and never close the connection (or anyone else's).

Tenancy: a connection belongs to the org of its verified token, and every
lookup of subscribers is keyed by the org of the change, so a change can only
reach connections of its own org; the ``ReadFilter`` then narrows that to
what each subscriber may read (document grants, when present).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from chalicelib.domain.keys import join_key
from chalicelib.domain.principal import ROLE_RANK, Principal

TopicKind = Literal["document", "tag", "org"]
MAX_FRAME_BYTES = 4096  # a client frame is a small JSON object; API Gateway allows 32 KiB
MAX_SUBSCRIPTIONS = 100  # per connection (DOCS_REALTIME_MAX_SUBSCRIPTIONS)
_ID = re.compile(r"[A-Za-z0-9._-]{1,128}")  # the document id rule of the HTTP API
_MAX_TAG = 256
_JWT = re.compile(r"(?:bearer\.)?([A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*)", re.I)
SUBPROTOCOL = "docs.v1"  # what the server selects when the client offers it
CLOSE_SLOW = 4008  # the server closes a connection whose queue overflowed
CLOSE_SLOW_REASON = "too slow: queue full; reconnect and resume from your last seq"
CLOSE_EXPIRED = 4001  # the token expired or was revoked: reconnect with a fresh one
CLOSE_FORBIDDEN = 4003  # a re-auth token of another user, org or roles: reconnect with it
CLOSE_GIVE_UP = 1011  # the server gave up on the connection (posts kept failing)
EXPIRED_REASON = "token expired: reconnect with a fresh token and resume from your last seq"
REVOKED_REASON = "token revoked: sign in again, reconnect and resume from your last seq"


class FrameError(Exception):
    """A client frame the server cannot act on: becomes an ``error`` frame."""

    def __init__(self, status: int, title: str, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.title = title
        self.detail = detail

    def frame(self) -> dict[str, Any]:
        return error_frame(self.status, self.title, self.detail)


@dataclass(frozen=True, order=True)
class Topic:
    """What a subscription covers: one document, one tag, or the whole org."""

    kind: TopicKind
    value: str = ""  # the document id or tag; empty for the org

    @property
    def key(self) -> str:
        """Collision-free encoding (``join_key``), for registries."""
        return join_key(self.kind, self.value)

    @classmethod
    def from_key(cls, key: str) -> Topic:
        from chalicelib.domain.keys import split_key

        kind, value = split_key(key)
        if kind not in ("document", "tag", "org"):
            raise ValueError(f"not a topic key: {key!r}")
        return cls(kind, value)  # type: ignore[arg-type]

    def as_dict(self) -> dict[str, Any]:
        return {"org": True} if self.kind == "org" else {self.kind: self.value}


def topics_of(doc_id: str, tags: Iterable[str]) -> list[Topic]:
    """Every topic a change of this document reaches."""
    return [Topic("document", doc_id), *(Topic("tag", t) for t in sorted(set(tags))),
            Topic("org")]  # fmt: skip


@dataclass(frozen=True)
class Credentials:
    """A verified token as a stream sees it: who, and the window it is good for.

    ``expires_at`` is the instant the HTTP API starts answering 401 for the same
    token (``exp`` plus the verifier's clock leeway): a stream ends there.
    ``issued_at`` (``iat``, or the earliest a token of the allowed lifetime could
    have been issued) is what a revocation is compared with."""

    who: Principal
    issued_at: float
    expires_at: float


@dataclass(frozen=True)
class Connection:
    """A client connection, as registered at connect (org only from the token).

    Org, subject and roles never change while it lives; an in-band re-auth
    moves ``expires_at`` and ``issued_at`` only."""

    id: str
    org: str
    sub: str
    roles: frozenset[str] = frozenset()
    connected_at: float = 0.0
    expires_at: float = math.inf
    issued_at: float = 0.0

    def expired(self, now: float) -> bool:
        return now >= self.expires_at


@dataclass(frozen=True)
class ClientFrame:
    action: Literal["subscribe", "unsubscribe", "ping", "auth"]
    topic: Topic | None = None
    since: str | None = None  # subscribe: catch up from this feed cursor first
    token: str | None = None  # auth: the fresh token


def _bad(detail: str) -> FrameError:
    return FrameError(400, "Bad frame", detail)


def parse_client_frame(raw: str | bytes) -> ClientFrame:
    """A client frame, or ``FrameError`` (400) saying what is wrong with it."""
    if len(raw) > MAX_FRAME_BYTES:
        raise FrameError(413, "Frame too large", f"Frames are limited to {MAX_FRAME_BYTES} bytes.")
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise _bad("A frame must be a JSON object.") from None
    if not isinstance(data, dict):
        raise _bad("A frame must be a JSON object.")
    action = data.get("action")
    if action == "ping":
        return ClientFrame("ping")
    if action == "auth":
        token = data.get("token")
        if not isinstance(token, str) or not token or set(data) != {"action", "token"}:
            raise _bad("'auth' takes exactly one 'token': the fresh JWT (a string).")
        return ClientFrame("auth", token=token)
    if action not in ("subscribe", "unsubscribe"):
        raise _bad("Unknown action: use 'subscribe', 'unsubscribe', 'auth' or 'ping'.")
    named = [k for k in ("document", "tag", "org") if k in data]
    if len(named) != 1:
        raise _bad("Name exactly one of 'document' (an id), 'tag' (a tag) or 'org' (true).")
    topic = _topic(named[0], data[named[0]])
    since = data.get("since")
    if since is not None and (action != "subscribe" or not isinstance(since, str)):
        raise _bad("'since' is a feed cursor (a string), on subscribe only.")
    return ClientFrame(action, topic, since)


def _topic(kind: str, value: Any) -> Topic:
    if kind == "org":
        if value is not True:
            raise _bad("'org' must be true.")
        return Topic("org")
    if kind == "document":
        if not isinstance(value, str) or not _ID.fullmatch(value):
            raise _bad("'document' must be a document id ([A-Za-z0-9._-]{1,128}).")
        return Topic("document", value)
    if not isinstance(value, str) or not 0 < len(value) <= _MAX_TAG or not value.isprintable():
        raise _bad(f"'tag' must be 1-{_MAX_TAG} printable characters.")
    return Topic("tag", value)


def change_frame(doc_id: str, version: int, etag: str, deleted: bool, seq: str) -> dict[str, Any]:
    """What a subscriber receives for one committed change (no body: see the module)."""
    return {"type": "change", "id": doc_id, "version": version, "etag": etag,
            "deleted": deleted, "seq": seq}  # fmt: skip


def error_frame(status: int, title: str, detail: str) -> dict[str, Any]:
    return {"type": "error", "status": status, "title": title, "detail": detail}


def close_frame(code: int, reason: str) -> dict[str, Any]:
    """The last frame of a connection the server ends: the transport sends it and
    then closes (locally with ``code`` and ``reason``; in AWS ``delete_connection``,
    whose close code API Gateway chooses, so the frame is what tells the client why)."""
    return {"type": "close", "code": code, "reason": reason}


def closing(frames: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The close frame among answers, if the server ends the connection."""
    return next((f for f in frames if f.get("type") == "close"), None)


def encode(frame: dict[str, Any]) -> str:
    return json.dumps(frame, separators=(",", ":"), ensure_ascii=False)


def token_from_subprotocols(offered: Iterable[str]) -> tuple[str | None, str | None]:
    """(token, subprotocol to select) from ``Sec-WebSocket-Protocol``'s values.

    Browsers cannot set headers on a WebSocket, so the token travels as one of
    the offered subprotocols: ``bearer.<JWT>`` or the bare JWT.  The server
    selects ``docs.v1`` when offered (never the token), else echoes the token's
    value, since a browser fails a handshake whose answer selects none of the
    protocols it offered."""
    values = [v.strip() for v in offered if v.strip()]
    token = None
    token_value = None
    for value in values:
        match = _JWT.fullmatch(value)
        if match:
            token, token_value = match.group(1), value
            break
    if SUBPROTOCOL in values:
        return token, SUBPROTOCOL
    return token, token_value


def may_read_org(roles: Iterable[str]) -> bool:
    """The org role that reads at all (reader, writer or admin)."""
    return any(r in ROLE_RANK for r in roles)


PostResult = Literal["ok", "gone", "throttled", "error"]


class OrgRoleReadFilter:
    """The default ``ReadFilter``: every document of the caller's org is readable
    with the role reader, writer or admin (what the HTTP read routes allow)."""

    def readable_ids(
        self, org: str, user: str, roles: frozenset[str], doc_ids: Iterable[str]
    ) -> set[str]:
        return set(doc_ids) if may_read_org(roles) else set()


@dataclass(frozen=True)
class StreamRow:
    """One outbox row as the fan-out sees it (ids and versions, no content)."""

    txid: int
    seq: int
    org: str
    doc_id: str
    version: int
    op: str
    created_at: datetime
    safe: bool = True  # below the horizon: no older transaction can still commit a row
    horizon: int = 0  # the oldest running transaction's id when the row was read

    @property
    def resume(self) -> tuple[int, int]:
        """The feed position a client may resume from after this row: the row's own,
        or, above the horizon, the horizon's (rows an older transaction may still
        commit come after it; the row itself comes again, which its version tells)."""
        return (self.txid, self.seq) if self.safe else (self.horizon, 0)


@dataclass
class StreamBatch:
    """Rows after the fan-out's cursor, and each document's tags (read under its org)."""

    rows: list[StreamRow]
    tags: dict[tuple[str, str], list[str]] = field(default_factory=dict)
    advanced_to: tuple[int, int] | None = None

    def advance(self, txid: int, seq: int) -> None:
        self.advanced_to = (txid, seq)


@dataclass(frozen=True)
class StreamStats:
    lag_s: float  # since the oldest row after the cursor committed (0 when caught up)
    backlog: int


def per_connection(frames: Iterator[tuple[str, str]]) -> dict[str, list[str]]:
    """(connection, frame) pairs grouped by connection, order kept."""
    out: dict[str, list[str]] = {}
    for conn_id, data in frames:
        out.setdefault(conn_id, []).append(data)
    return out
