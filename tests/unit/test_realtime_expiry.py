"""A real-time stream lives no longer than its token: expiry, in-band re-auth and
revocation, against in-memory fakes of the ports (docs/realtime.md)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from chalicelib.api.problems import error_frame_of
from chalicelib.domain.errors import Unauthorized
from chalicelib.domain.principal import Principal
from chalicelib.domain.realtime import (
    CLOSE_EXPIRED,
    CLOSE_FORBIDDEN,
    Credentials,
    OrgRoleReadFilter,
    Topic,
)
from chalicelib.service_layer.documents import DocumentService
from chalicelib.service_layer.fanout import FanOut
from chalicelib.service_layer.realtime import RealtimeService
from chalicelib.settings_groups import RealtimeSettings
from tests.unit.fakes import FakeUnitOfWork, coherence
from tests.unit.realtime_fakes import FakePoster, FakeRegistry, FakeStream, live

WRITER = Principal("alice", "acme", frozenset({"writer"}))
READER = Principal("bob", "acme", frozenset({"reader"}))
T0 = 1_900_000_000.0


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


class World:
    """The service and the fan-out on one clock; tokens are names of credentials."""

    def __init__(self) -> None:
        self.clock = Clock()
        self.uow = FakeUnitOfWork()
        self.documents = DocumentService(self.uow, coherence(self.uow), page_secret="s")
        self.registry = FakeRegistry()
        self.poster = FakePoster()
        self.tokens: dict[str, Credentials] = {}
        self.service = RealtimeService(
            self.registry, self.uow, OrgRoleReadFilter(), page_secret="s",
            error_frame=error_frame_of,
            verify=self.verify, clock=self.clock,
        )  # fmt: skip
        self.fanout = FanOut(
            FakeStream(self.uow), self.registry, self.poster, OrgRoleReadFilter(),
            page_secret="s", settings=RealtimeSettings(parallel_posts=1),
            sleep=lambda s: None, clock=self.clock,
        )  # fmt: skip

    def verify(self, token: str, request_id: str | None) -> Credentials:
        creds = self.tokens.get(token)
        if creds is None or self.clock() >= creds.expires_at:
            raise Unauthorized("The token's signature does not verify.")
        return creds

    def token(self, name: str, who: Principal, ttl_s: float, *, at: float | None = None) -> str:
        self.tokens[name] = live(who, ttl_s, now=self.clock() if at is None else at)
        return name

    def connect(self, conn: str, who: Principal = READER, ttl_s: float = 3.0) -> None:
        self.service.connect(conn, live(who, ttl_s, now=self.clock()))
        assert self.send(conn, {"action": "subscribe", "org": True})[-1]["type"] == "subscribed"

    def send(self, conn: str, frame: dict[str, Any]) -> list[dict[str, Any]]:
        return self.service.handle(conn, json.dumps(frame))

    def received(self, conn: str) -> list[dict[str, Any]]:
        return [json.loads(f) for f in self.poster.sent.get(conn, [])]

    def changes(self, conn: str) -> list[dict[str, Any]]:
        return [f for f in self.received(conn) if f["type"] == "change"]


@pytest.fixture
def world() -> World:
    return World()


def _closed(frames: list[dict[str, Any]], code: int) -> bool:
    return len(frames) == 1 and frames[0]["type"] == "close" and frames[0]["code"] == code


# ------------------------------------------------------------------- frames meet the expiry
def test_a_subscribe_after_expiry_gets_no_catch_up_and_closes_4001(world: World) -> None:
    """The probe's case: a 3 s token, 40 s later a subscribe with since replays nothing."""
    world.connect("c1")
    for n in range(5):
        world.documents.create(WRITER, {"title": f"d{n}"})
    world.fanout.drain()
    seq = world.changes("c1")[0]["seq"]
    world.clock.now += 40
    answers = world.send("c1", {"action": "subscribe", "org": True, "since": seq})
    assert _closed(answers, CLOSE_EXPIRED), answers
    assert "expired" in answers[0]["reason"]
    assert world.registry.get("c1") is None  # forgotten: no frame reaches it any more


@pytest.mark.parametrize(
    "frame",
    [{"action": "ping"}, {"action": "unsubscribe", "org": True}, {"action": "nonsense"}, "x"],
)
def test_every_frame_is_checked_against_the_expiry(world: World, frame: Any) -> None:
    world.connect("c1")
    world.clock.now += 3.0  # the instant it expires
    raw = frame if isinstance(frame, str) else json.dumps(frame)
    assert _closed(world.service.handle("c1", raw), CLOSE_EXPIRED)


def test_before_expiry_frames_are_answered_as_before(world: World) -> None:
    world.connect("c1")
    world.clock.now += 2.9
    assert world.send("c1", {"action": "ping"}) == [{"type": "pong"}]


# --------------------------------------------------------------------- the fan-out's checks
def test_the_fan_out_closes_an_expired_connection_instead_of_posting(world: World) -> None:
    world.connect("c1")
    world.connect("c2", ttl_s=3600)
    world.clock.now += 40
    world.documents.create(WRITER, {"title": "late"})
    report = world.fanout.drain()
    assert world.changes("c1") == [] and len(world.changes("c2")) == 1
    assert world.received("c1")[-1] == {"type": "close", "code": CLOSE_EXPIRED,
                                        "reason": world.received("c1")[-1]["reason"]}  # fmt: skip
    assert world.poster.codes["c1"][0] == CLOSE_EXPIRED and "c2" not in world.poster.closed
    assert world.registry.get("c1") is None and report.expired == 1


def test_a_batch_without_changes_still_closes_expired_connections(world: World) -> None:
    world.connect("c1")
    world.clock.now += 4
    assert world.fanout.drain().expired == 1
    assert world.poster.closed == ["c1"]


def test_a_cached_connection_that_re_authenticated_is_not_closed(world: World) -> None:
    world.connect("c1")
    world.documents.create(WRITER, {"title": "a"})
    world.fanout.drain()  # the fan-out now caches c1 with its first expiry
    token = world.token("fresh", READER, 3600)
    assert world.send("c1", {"action": "auth", "token": token})[0]["type"] == "authenticated"
    world.clock.now += 40
    world.documents.create(WRITER, {"title": "b"})
    world.fanout.drain()
    assert len(world.changes("c1")) == 2 and world.poster.closed == []


# --------------------------------------------------------------------------- in-band re-auth
def test_re_auth_before_expiry_keeps_the_connection_and_its_subscriptions(world: World) -> None:
    world.connect("c1")
    world.send("c1", {"action": "subscribe", "tag": "t"})
    world.clock.now += 2
    token = world.token("fresh", READER, 60)
    [ack] = world.send("c1", {"action": "auth", "token": token})
    assert ack == {"type": "authenticated", "expires_at": world.clock.now + 60}
    world.clock.now += 30  # past the first token's expiry, within the second's
    assert world.send("c1", {"action": "ping"}) == [{"type": "pong"}]
    assert world.registry.subscriptions("c1") == {Topic("org"), Topic("tag", "t")}
    world.documents.create(WRITER, {"title": "a"})
    world.fanout.drain()
    assert len(world.changes("c1")) == 1
    world.clock.now += 30  # the second token's expiry
    assert _closed(world.send("c1", {"action": "ping"}), CLOSE_EXPIRED)


def test_an_invalid_re_auth_token_is_refused_and_changes_nothing(world: World) -> None:
    world.connect("c1")
    [answer] = world.send("c1", {"action": "auth", "token": "forged"})
    assert answer["type"] == "error" and answer["status"] == 401
    world.clock.now += 3
    assert _closed(world.send("c1", {"action": "ping"}), CLOSE_EXPIRED)


@pytest.mark.parametrize("frame", [{"action": "auth"}, {"action": "auth", "token": 7},
                                   {"action": "auth", "token": "t", "org": True}])  # fmt: skip
def test_a_malformed_auth_frame_is_a_bad_frame(world: World, frame: dict[str, Any]) -> None:
    world.connect("c1")
    [answer] = world.send("c1", frame)
    assert answer["status"] == 400


def test_re_auth_after_expiry_is_too_late(world: World) -> None:
    world.connect("c1")
    token = world.token("fresh", READER, 3600, at=world.clock.now + 10)
    world.clock.now += 10
    assert _closed(world.send("c1", {"action": "auth", "token": token}), CLOSE_EXPIRED)


@pytest.mark.parametrize(
    "who",
    [
        Principal("mallory", "acme", frozenset({"reader"})),  # another user
        Principal("bob", "evil", frozenset({"reader"})),  # another org
        Principal("bob", "acme", frozenset()),  # the read role removed
        Principal("bob", "acme", frozenset({"admin"})),  # other roles: reconnect with them
    ],
)
def test_re_auth_as_someone_else_or_with_other_roles_closes_4003(
    world: World, who: Principal
) -> None:
    world.connect("c1")
    answers = world.send("c1", {"action": "auth", "token": world.token("other", who, 3600)})
    assert _closed(answers, CLOSE_FORBIDDEN), answers
    assert world.registry.get("c1") is None
    world.documents.create(WRITER, {"title": "a"})
    world.fanout.drain()
    assert world.changes("c1") == []


# ----------------------------------------------------------------------------- revocation
def test_a_revoked_user_s_streams_end_in_the_fan_out_s_next_batch(world: World) -> None:
    world.connect("bob-1")
    world.connect("bob-2", ttl_s=3600)
    world.connect("carol", Principal("carol", "acme", frozenset({"reader"})), ttl_s=3600)
    world.clock.now += 1
    world.service.revoke_user("acme", "bob")
    world.documents.create(WRITER, {"title": "after"})
    report = world.fanout.drain()
    assert report.revoked == 2
    assert sorted(world.poster.closed) == ["bob-1", "bob-2"]
    assert world.changes("bob-1") == world.changes("bob-2") == []
    assert len(world.changes("carol")) == 1


def test_a_revoked_token_opens_no_stream_and_keeps_none(world: World) -> None:
    old = live(READER, 3600, now=world.clock.now)
    world.service.connect("c1", old)
    world.clock.now += 1
    world.service.revoke_user("acme", "bob")
    assert _closed(world.send("c1", {"action": "ping"}), CLOSE_EXPIRED)  # frames check it too
    with pytest.raises(Unauthorized):
        world.service.connect("c2", old)
    stale = world.token("stale", READER, 3600, at=world.clock.now - 1)
    world.service.connect("c3", live(READER, 3600, now=world.clock.now + 1))  # a newer token
    assert _closed(world.send("c3", {"action": "auth", "token": stale}), CLOSE_EXPIRED)


def test_connect_refuses_an_expired_token(world: World) -> None:
    with pytest.raises(Unauthorized):
        world.service.connect("c1", live(READER, 3, now=world.clock.now - 3))


def test_the_asyncapi_document_describes_auth_and_close() -> None:
    from pathlib import Path

    import yaml

    from chalicelib.domain.realtime import close_frame

    doc = yaml.safe_load((Path(__file__).parents[2] / "docs" / "asyncapi.yaml").read_text())
    messages = doc["components"]["messages"]
    assert set(messages["close"]["payload"]["required"]) == set(close_frame(4001, "r"))
    assert set(messages["auth"]["payload"]["required"]) == {"action", "token"}
    assert messages["authenticated"]["payload"]["required"] == ["type", "expires_at"]
    assert {"auth", "authenticated", "close"} <= set(doc["channels"]["realtime"]["messages"])
