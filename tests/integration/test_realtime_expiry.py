"""Real-time streams end with their token, in AWS shape: the Redis registry keeps
each connection's expiry, the WebSocket route handler checks every frame, the
fan-out closes expired and revoked connections (``delete_connection`` through
moto's management API) before it posts, and an erasure over HTTP revokes the
user's streams.  Time passes by moving the services' clocks, not by waiting."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest
import redis

from chalicelib.adapters.redis.realtime import RedisConnectionRegistry
from chalicelib.domain.realtime import CLOSE_EXPIRED, CLOSE_FORBIDDEN
from tests.conftest import Invoker, make_token, namespace
from tests.integration.test_realtime import _event, _fan_out, _org, _posted, rt

pytestmark = pytest.mark.integration
__all__ = ["rt"]  # the fixture, shared with tests/integration/test_realtime.py
TTL_S = 60  # the tokens of these tests; the clocks move past it (other tests use 600 s)


def _later(rt: Any, seconds: float) -> None:
    """Move the real-time service's and the fan-out's clocks ``seconds`` ahead."""
    clock: Callable[[], float] = lambda: time.time() + seconds  # noqa: E731
    rt.realtime.clock = clock
    rt.realtime_fanout().clock = clock


def _deleted(rt: Any) -> list[tuple[str, list[dict[str, Any]]]]:
    """Records each ``delete_connection`` with the frames posted to it before."""
    calls: list[tuple[str, list[dict[str, Any]]]] = []
    client = rt.realtime_poster.client

    def record(params: dict[str, Any], **_: Any) -> None:
        target = str(params.get("url_path", "")).rsplit("/", 1)[-1]
        calls.append((target, _posted(target)))

    client.meta.events.register("before-call.apigatewaymanagementapi.DeleteConnection", record)
    return calls


def _ws(route: str, conn_id: str, body: str | None = None, token: str = "") -> dict[str, Any]:
    from devtools.events import LambdaContext
    from functions.realtime import ws_handler

    name = {"$connect": "ws_connect", "$disconnect": "ws_disconnect"}.get(route, "ws_subscribe")
    event = _event(name, token)
    event["requestContext"]["connectionId"] = conn_id
    event["requestContext"]["routeKey"] = route
    if body is not None:
        event["body"] = body
    answer: dict[str, Any] = ws_handler(event, LambdaContext.new())
    return answer


def _open(org: str, sub: str, *, ttl_s: int = TTL_S, roles: tuple[str, ...] = ("reader",)) -> str:
    conn_id = f"{org}-{sub}-{uuid.uuid4().hex[:6]}"
    token = make_token(org=org, sub=sub, roles=roles, exp=int(time.time()) + ttl_s)
    assert _ws("$connect", conn_id, token=token)["statusCode"] == 200
    _ws("subscribe", conn_id, json.dumps({"action": "subscribe", "org": True}))
    assert _posted(conn_id)[-1]["type"] == "subscribed"
    return conn_id


def test_the_registry_keeps_each_connections_expiry(rt: Any) -> None:
    org = _org()
    conn_id = _open(org, "bob")
    conn = rt.realtime_registry.get(conn_id)
    leeway = rt.settings.jwt_leeway_s
    assert abs(conn.expires_at - (time.time() + TTL_S + leeway)) < 5
    assert conn_id not in rt.realtime_registry.expired(time.time(), 10_000)
    assert conn_id in rt.realtime_registry.expired(conn.expires_at, 10_000)
    rt.realtime.disconnect(conn_id)
    assert conn_id not in rt.realtime_registry.expired(conn.expires_at, 10_000)


def test_a_frame_after_expiry_gets_a_close_frame_and_the_connection_is_deleted(
    rt: Any,
) -> None:
    """The probe's case: after expiry a subscribe with since replays nothing."""
    org = _org()
    conn_id = _open(org, "bob")
    api = Invoker(make_token(org=org, roles=("writer",)))
    for n in range(3):
        assert api("POST", "/documents", {"title": f"d{n}"}).status == 201
    _fan_out(rt, 3)
    seq = _posted(conn_id)[1]["seq"]
    deleted = _deleted(rt)
    _later(rt, TTL_S + rt.settings.jwt_leeway_s + 1)
    _ws("subscribe", conn_id, json.dumps({"action": "subscribe", "org": True, "since": seq}))
    [(target, frames)] = deleted
    assert target == conn_id
    assert frames[-1]["type"] == "close" and frames[-1]["code"] == CLOSE_EXPIRED
    # the three of the live fan-out, none of a catch-up after the expiry
    assert len([f for f in frames if f["type"] == "change"]) == 3
    assert rt.realtime_registry.get(conn_id) is None


def test_the_fan_out_deletes_expired_connections_before_it_posts(rt: Any) -> None:
    org = _org()
    short, long = _open(org, "bob"), _open(org, "carol", ttl_s=600)
    deleted = _deleted(rt)
    _later(rt, TTL_S + rt.settings.jwt_leeway_s + 1)
    assert Invoker(make_token(org=org))("POST", "/documents", {"title": "x"}).status == 201
    _fan_out(rt, 1)
    assert [f["type"] for f in _posted(long)] == ["subscribed", "change"]
    ((target, frames),) = [(t, f) for t, f in deleted if t == short]
    assert frames[-1] == {"type": "close", "code": CLOSE_EXPIRED, "reason": frames[-1]["reason"]}
    assert not [f for f in frames if f["type"] == "change"]
    assert rt.realtime_registry.get(short) is None


def test_in_band_re_auth_through_the_default_route(rt: Any) -> None:
    org = _org()
    conn_id = _open(org, "bob")
    fresh = make_token(org=org, sub="bob", roles=("reader",), exp=int(time.time()) + 600)
    _ws("$default", conn_id, json.dumps({"action": "auth", "token": fresh}))
    ack = _posted(conn_id)[-1]
    assert ack["type"] == "authenticated" and ack["expires_at"] > time.time() + 600
    _later(rt, TTL_S + rt.settings.jwt_leeway_s + 1)  # past the first token only
    assert Invoker(make_token(org=org))("POST", "/documents", {"title": "x"}).status == 201
    _fan_out(rt, 1)
    assert _posted(conn_id)[-1]["type"] == "change"
    forged = fresh[:-4] + "AAAA"
    _ws("$default", conn_id, json.dumps({"action": "auth", "token": forged}))
    assert _posted(conn_id)[-1]["status"] == 401  # refused; the connection stays
    other = make_token(org=org, sub="mallory", roles=("reader",))
    deleted = _deleted(rt)
    _ws("$default", conn_id, json.dumps({"action": "auth", "token": other}))
    [(target, frames)] = deleted
    assert target == conn_id and frames[-1]["code"] == CLOSE_FORBIDDEN


def test_erasure_ends_the_users_streams_in_the_fan_outs_next_batch(rt: Any) -> None:
    org = _org()
    bob_token = make_token(org=org, sub="bob", roles=("reader",))
    bob = f"{org}-bob"
    assert _ws("$connect", bob, token=bob_token)["statusCode"] == 200
    _ws("subscribe", bob, json.dumps({"action": "subscribe", "org": True}))
    carol = _open(org, "carol", ttl_s=600)
    deleted = _deleted(rt)
    admin = Invoker(make_token(org=org, sub="root", roles=("admin",)))
    assert admin("POST", "/users/bob/erasure", {"documents": "delete"}).status == 200
    assert admin("POST", "/documents", {"title": "after"}).status == 201
    report = _fan_out(rt, 1)
    assert report.revoked >= 1
    frames = dict(deleted)
    assert bob in frames and carol not in frames
    assert frames[bob][-1]["code"] == CLOSE_EXPIRED and "revoked" in frames[bob][-1]["reason"]
    assert _posted(carol)[-1]["type"] == "change"
    # the same token opens no new stream
    assert _ws("$connect", f"{bob}-again", token=bob_token)["statusCode"] == 401


def test_a_refused_connect_is_counted_when_it_is_ours_not_when_it_is_the_clients(
    rt: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    import functions.realtime

    counted: list[str] = []
    monkeypatch.setattr(functions.realtime, "count", lambda name, value=1: counted.append(name))
    assert _ws("$connect", "c-bad", token="bearer.not.a.jwt")["statusCode"] == 401
    no_role = make_token(org=_org(), roles=())
    assert _ws("$connect", "c-norole", token=no_role)["statusCode"] == 403
    assert counted == []
    dead = redis.Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.2)
    monkeypatch.setattr(rt.realtime, "registry", RedisConnectionRegistry(dead, namespace("x:")))
    answer = _ws("$connect", "c-down", token=make_token(org=_org(), roles=("reader",)))
    assert answer["statusCode"] == 503
    assert counted == ["RealtimeConnectFailed"]


def test_a_failed_delete_connection_is_counted(rt: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    import chalicelib.adapters.apigw_connections as apigw

    counted: list[str] = []
    monkeypatch.setattr(apigw, "count", lambda name, value=1: counted.append(name))
    poster = rt.realtime_poster

    def fail(params: dict[str, Any], **_: Any) -> Any:
        from tests.integration.test_realtime import _Http

        return _Http(500), {"Error": {"Code": "InternalServerError", "Message": "x"},
                            "ResponseMetadata": {"HTTPStatusCode": 500}}  # fmt: skip

    poster.close("already-gone")  # moto: nothing to delete, not a failure
    assert counted == []
    poster.client.meta.events.register("before-call.apigatewaymanagementapi.DeleteConnection", fail)
    poster.close("c-1", CLOSE_EXPIRED, "token expired")
    assert counted == ["RealtimeCloseFailed"]
