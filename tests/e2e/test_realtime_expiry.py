"""Local real-time streams end with their token, black-box: a WebSocket is closed
with 4001 and a reason, an event stream ends with a ``close`` event, and an
in-band ``auth`` frame keeps a WebSocket and its subscriptions.

Tokens that expire soon without a server of its own: ``exp`` lies in the past
by a little less than the verifier's leeway (30 s), so the token is accepted
and its stream's end (``exp`` + leeway) is two seconds away."""

from __future__ import annotations

import http.client
import json
import time
from typing import Any

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection

from tests.conftest import make_token
from tests.e2e.test_realtime import _create, _events, _org, _send, _writer, _ws, rt_server

pytestmark = pytest.mark.e2e
__all__ = ["rt_server"]
LEEWAY_S = 30  # DOCS_JWT_LEEWAY_S's default, which the local server runs with
SOON_S = 2


def _soon(org: str, sub: str = "bob") -> tuple[str, float]:
    """A reader's token whose stream ends ``SOON_S`` from now, and that instant."""
    now = int(time.time())
    exp = now - LEEWAY_S + SOON_S
    return make_token(org=org, sub=sub, roles=("reader",), iat=now - 60, exp=exp), exp + LEEWAY_S


def _until_closed(ws: ClientConnection) -> list[dict[str, Any]]:
    """The frames received until the server closed the connection."""
    frames: list[dict[str, Any]] = []
    try:
        while True:
            frames.append(json.loads(ws.recv(timeout=20)))
    except ConnectionClosed:
        return frames


def test_a_websocket_is_closed_4001_when_its_token_expires(rt_server: Any) -> None:
    org = _org()
    token, _ = _soon(org)
    with _ws(rt_server, token) as ws:
        assert _send(ws, action="subscribe", org=True)["type"] == "subscribed"
        frames = _until_closed(ws)  # nothing is sent: the server ends it by itself
        assert ws.close_code == 4001 and "expired" in (ws.close_reason or "")
        assert frames[-1]["type"] == "close" and frames[-1]["code"] == 4001


def test_in_band_re_auth_keeps_the_websocket_and_its_subscriptions(rt_server: Any) -> None:
    org = _org()
    token, ends = _soon(org)
    api = _writer(rt_server, org)
    with _ws(rt_server, token) as ws:
        assert _send(ws, action="subscribe", org=True)["type"] == "subscribed"
        fresh = make_token(org=org, sub="bob", roles=("reader",))
        ws.send(json.dumps({"action": "auth", "token": fresh}))
        ack = json.loads(ws.recv(timeout=20))
        assert ack["type"] == "authenticated" and ack["expires_at"] > ends + 60
        time.sleep(max(0.0, ends - time.time()) + 0.5)  # past the first token's end
        assert _send(ws, action="ping") == {"type": "pong"}
        doc = _create(api, "after")
        while True:
            frame = json.loads(ws.recv(timeout=20))
            if frame["type"] == "change":
                break
        assert frame["id"] == doc["id"]
        other = make_token(org=org, sub="mallory", roles=("reader",))
        ws.send(json.dumps({"action": "auth", "token": other}))
        assert _until_closed(ws)[-1]["code"] == 4003
        assert ws.close_code == 4003


def _until_end(resp: http.client.HTTPResponse) -> list[str]:
    """The lines of an event stream up to its end (EOF)."""
    lines = []
    while True:
        raw = resp.readline()
        if not raw:
            return lines
        lines.append(raw.decode().rstrip("\n"))


def test_an_event_stream_ends_when_its_token_expires(rt_server: Any) -> None:
    org = _org()
    token, _ = _soon(org)
    resp = _events(rt_server, token)
    assert resp.status == 200
    lines = _until_end(resp)  # the server ends the stream; it would not end by itself
    at = lines.index("event: close")
    close = json.loads(lines[at + 1].removeprefix("data: "))
    assert close["type"] == "close" and close["code"] == 4001 and "expired" in close["reason"]
    resp.close()
