"""Real-time against the local server, black-box: real WebSocket clients on
``/realtime`` and a real server-sent events stream on ``/changes``."""

from __future__ import annotations

import http.client
import json
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import ClientConnection, connect

from tests.conftest import REDIS_URL, make_token
from tests.e2e.conftest import Client, LocalServer, server_env

pytestmark = pytest.mark.e2e
QUEUE_FRAMES = 16


@pytest.fixture(scope="module")
def rt_server(
    database_url: str, redis_prefix: str, local_search_env: dict[str, str]
) -> Iterator[LocalServer]:
    env = server_env(database_url, REDIS_URL, redis_prefix, **local_search_env,
                     DOCS_REALTIME_QUEUE_FRAMES=str(QUEUE_FRAMES),
                     DOCS_REALTIME_HEARTBEAT_S="0.5")  # fmt: skip
    running = LocalServer(env)
    yield running
    running.stop()


def _org() -> str:
    return f"rt-{uuid.uuid4().hex[:8]}"


def _ws(server: LocalServer, token: str, **kwargs: Any) -> ClientConnection:
    return connect(f"ws://127.0.0.1:{server.port}/realtime",
                   subprotocols=["docs.v1", f"bearer.{token}"], open_timeout=20, **kwargs)  # type: ignore[list-item]  # fmt: skip


def _send(ws: ClientConnection, **frame: Any) -> dict[str, Any]:
    """Send a frame; the answer that ends it (an ack or an error)."""
    ws.send(json.dumps(frame))
    while True:
        answer: dict[str, Any] = json.loads(ws.recv(timeout=20))
        if answer["type"] in ("subscribed", "unsubscribed", "error", "pong"):
            return answer


def _next_change(ws: ClientConnection) -> dict[str, Any]:
    while True:
        frame: dict[str, Any] = json.loads(ws.recv(timeout=20))
        if frame["type"] == "change":
            return frame


def _writer(server: LocalServer, org: str) -> Client:
    return Client(server.base, make_token(org=org, roles=("writer",)))


def _create(api: Client, title: str, **fields: Any) -> dict[str, Any]:
    r = api.request("POST", "/documents", {"title": title, **fields})
    assert r.status == 201, r.body
    doc: dict[str, Any] = r.json()
    return doc


def test_subscribe_write_receive_and_other_orgs_never_see_it(rt_server: LocalServer) -> None:
    org, other = _org(), _org()
    api, theirs = _writer(rt_server, org), _writer(rt_server, other)
    doc = _create(api, "plan")
    with _ws(rt_server, make_token(org=org, roles=("reader",))) as mine, \
            _ws(rt_server, make_token(org=other, roles=("reader",))) as spy:  # fmt: skip
        assert mine.subprotocol == "docs.v1"
        assert _send(mine, action="subscribe", document=doc["id"])["type"] == "subscribed"
        assert _send(spy, action="subscribe", org=True)["type"] == "subscribed"
        r = api.request("PATCH", f"/documents/{doc['id']}", {"title": "plan 2"},
                        headers={"Content-Type": "application/merge-patch+json",
                                 "If-Match": doc["etag"]})  # fmt: skip
        assert r.status == 200
        change = _next_change(mine)
        if change["version"] == 1:  # the create may still be on its way: order is kept
            change = _next_change(mine)
        assert (change["id"], change["version"], change["deleted"]) == (doc["id"], 2, False)
        assert change["etag"] == r.headers["etag"] and change["seq"]
        # the spy's stream works (it sees its own org's write) and held nothing else
        sentinel = _create(theirs, "theirs")
        assert _next_change(spy)["id"] == sentinel["id"]


def test_bad_frames_get_error_frames_and_others_keep_receiving(rt_server: LocalServer) -> None:
    org = _org()
    api = _writer(rt_server, org)
    token = make_token(org=org, roles=("reader",))
    with _ws(rt_server, token) as bad, _ws(rt_server, token) as good:
        assert _send(good, action="subscribe", org=True)["type"] == "subscribed"
        for raw in ("not json", '{"action": "dance"}', '{"action": "subscribe", "org": 1}'):
            bad.send(raw)
            answer = json.loads(bad.recv(timeout=20))
            assert answer["type"] == "error" and answer["status"] == 400, answer
        theirs = _create(_writer(rt_server, _org()), "elsewhere")
        missing = _send(bad, action="subscribe", document=theirs["id"])
        nothing = _send(bad, action="subscribe", document="no-such-doc")
        assert missing["status"] == nothing["status"] == 404  # another org's = missing
        assert _send(bad, action="ping")["type"] == "pong"  # still open
        doc = _create(api, "after the noise")
        assert _next_change(good)["id"] == doc["id"]


def test_a_connection_without_a_valid_token_is_refused(rt_server: LocalServer) -> None:
    with pytest.raises(InvalidStatus) as refused:
        connect(f"ws://127.0.0.1:{rt_server.port}/realtime?token=nope", open_timeout=20)
    assert refused.value.response.status_code == 401
    query = f"ws://127.0.0.1:{rt_server.port}/realtime?token={make_token(roles=('reader',))}"
    with connect(query, open_timeout=20) as ws:  # the query parameter works too
        assert _send(ws, action="ping")["type"] == "pong"


def test_a_reconnect_with_its_cursor_gets_what_it_missed(rt_server: LocalServer) -> None:
    org = _org()
    api = _writer(rt_server, org)
    token = make_token(org=org, roles=("reader",))
    with _ws(rt_server, token) as ws:
        _send(ws, action="subscribe", org=True)
        first = _create(api, "seen")
        seen = _next_change(ws)
        assert seen["id"] == first["id"]
    missed = [_create(api, f"missed {i}") for i in range(3)]
    with _ws(rt_server, token) as ws:
        # the catch-up (from the feed), then live: together they miss nothing
        ws.send(json.dumps({"action": "subscribe", "org": True, "since": seen["seq"]}))
        live = _create(api, "live again")
        wanted = {d["id"] for d in [*missed, live]}
        got: list[tuple[str, int]] = []
        while not wanted <= {doc_id for doc_id, _ in got}:  # nothing missed (a hang guard)
            frame = json.loads(ws.recv(timeout=60))
            if frame["type"] == "change":
                got.append((frame["id"], frame["version"]))
        # per-document order (docs/realtime.md); across documents, a live frame may
        # overtake the catch-up, and a row read again above the horizon may come twice
        for doc_id in wanted:
            versions = [v for d, v in got if d == doc_id]
            assert versions == sorted(versions), (doc_id, versions)


def test_a_slow_client_is_cut_off_while_the_others_keep_receiving(rt_server: LocalServer) -> None:
    org = _org()
    api = _writer(rt_server, org)
    token = make_token(org=org, roles=("reader",))
    raw = socket.create_connection(("127.0.0.1", rt_server.port))
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # it reads nothing for now
    with _ws(rt_server, token, sock=raw, max_queue=1) as slow, _ws(rt_server, token) as fast:
        _send(slow, action="subscribe", org=True)
        _send(fast, action="subscribe", org=True)
        received: list[str] = []

        def read_fast() -> None:  # the healthy client reads all along
            while len(received) < wanted:
                received.append(_next_change(fast)["id"])

        wanted = 600
        reader = threading.Thread(target=read_fast, daemon=True)
        reader.start()
        body = {"documents": [{"title": f"bulk {i} " + "x" * 200} for i in range(100)]}
        for _ in range(wanted // 100):  # more than its queue and socket buffers hold
            r = api.request("POST", "/documents:batch", body)
            assert r.status in (200, 201, 207), r.body
        with pytest.raises(ConnectionClosed) as closed:
            _drain(slow)  # what was written before the close, then the close
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 4008
        assert "resume" in closed.value.rcvd.reason
        reader.join(timeout=60)
        assert len(set(received)) == wanted  # every change reached the fast client


def _drain(ws: ClientConnection) -> None:
    while True:
        ws.recv(timeout=20)


# ------------------------------------------------------------------ server-sent events
def _events(server: LocalServer, token: str, **headers: str) -> http.client.HTTPResponse:
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=20)
    conn.request("GET", "/changes?feed=eventsource&since=now",
                 headers={"Authorization": f"Bearer {token}", **headers})  # fmt: skip
    return conn.getresponse()


def _read_event(resp: http.client.HTTPResponse) -> tuple[list[str], dict[str, str]]:
    """(comment lines, fields) of the next event or comment block."""
    comments: list[str] = []
    fields: dict[str, str] = {}
    while True:
        line = resp.readline().decode().rstrip("\n")
        if line == "":
            if comments or fields:
                return comments, fields
            continue
        if line.startswith(":"):
            comments.append(line)
        else:
            name, _, value = line.partition(": ")
            fields[name] = value


def _next_event(resp: http.client.HTTPResponse) -> dict[str, str]:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        _, fields = _read_event(resp)
        if fields.get("event") == "change":
            return fields
    raise AssertionError("no change event")


def test_server_sent_events_stream_heartbeat_and_resume(rt_server: LocalServer) -> None:
    org = _org()
    api = _writer(rt_server, org)
    token = make_token(org=org, roles=("reader",))
    resp = _events(rt_server, token)
    assert resp.status == 200 and resp.headers["content-type"].startswith("text/event-stream")
    comments: list[str] = []
    while not comments:  # a heartbeat comes while nothing happens
        comments, _ = _read_event(resp)
    first = _create(api, "one")
    event = _next_event(resp)
    data = json.loads(event["data"])
    assert data["id"] == first["id"] and event["id"] == data["seq"]
    resp.close()
    second = _create(api, "two")
    again = _events(rt_server, token, **{"Last-Event-ID": event["id"]})
    assert json.loads(_next_event(again)["data"])["id"] == second["id"]
    again.close()
    denied = _events(rt_server, "not-a-token")
    assert denied.status == 401
    assert denied.headers["content-type"] == "application/problem+json"
