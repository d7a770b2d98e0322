"""No token in the local server's log, black-box: a run that sends tokens every
way a client can, then a grep of everything the run wrote for ``eyJ``.

The server's stdout and stderr (its workers, the real-time hub, the app's
Powertools lines at DEBUG) all go to the one log file the fixture reads.
"""

from __future__ import annotations

import json
import socket
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from tests.conftest import REDIS_URL, make_token
from tests.e2e.conftest import Client, LocalServer, server_env
from tests.polling import poll

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def logged_server(
    database_url: str, redis_prefix: str, local_search_env: dict[str, str]
) -> Iterator[LocalServer]:
    env = server_env(
        database_url,
        REDIS_URL,
        redis_prefix,
        **local_search_env,
        DOCS_WORKERS="2",
        POWERTOOLS_LOG_LEVEL="DEBUG",
        POWERTOOLS_LOGGER_LOG_EVENT="true",
    )
    running = LocalServer(env)
    yield running
    running.stop()


def _ws_url(server: LocalServer, query: str = "") -> str:
    return f"ws://127.0.0.1:{server.port}/realtime{query}"


def _event_stream(server: LocalServer, target: str, headers: str = "") -> bytes:
    """The start of a server-sent events stream (its head and first event)."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=20) as sock:
        sock.sendall(f"GET {target} HTTP/1.1\r\nHost: x\r\n{headers}\r\n".encode())
        data = b""
        while b"retry:" not in data and b"problem" not in data:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    return data


def test_a_run_that_sends_tokens_every_way_logs_none(logged_server: LocalServer) -> None:
    org = f"log-{uuid.uuid4().hex[:8]}"
    token = make_token(org=org, roles=("writer",))
    api = Client(logged_server.base, token)

    # the HTTP API: Authorization headers, and a token in a query the app ignores
    doc = api.request("POST", "/documents", {"title": "logged"}).json()
    assert api.request("GET", f"/documents/{doc['id']}?access_token={token}").status == 200
    assert Client(logged_server.base, token + "x").request("GET", "/documents").status == 401
    # WebSocket: ?token=, the bearer subprotocol, and a refused one
    with connect(_ws_url(logged_server, f"?token={token}"), open_timeout=20) as ws:
        ws.send(json.dumps({"action": "ping"}))
        ws.recv(timeout=20)
    protocols: list[Any] = ["docs.v1", f"bearer.{token}"]
    with connect(_ws_url(logged_server), subprotocols=protocols, open_timeout=20) as ws:
        ws.send(json.dumps({"action": "ping"}))
        ws.recv(timeout=20)
    with pytest.raises(InvalidStatus):
        connect(_ws_url(logged_server, f"?token={token}x"), open_timeout=20).close()
    # server-sent events: ?token= and Authorization
    assert b"200 OK" in _event_stream(logged_server, f"/changes?feed=eventsource&token={token}")
    head = f"Authorization: Bearer {token}\r\n"
    assert b"200 OK" in _event_stream(logged_server, "/changes?feed=eventsource", head)
    # a malformed request that holds a token, and a request with a token in a bad URL
    with socket.create_connection(("127.0.0.1", logged_server.port), timeout=20) as sock:
        sock.sendall(f"GET /documents HTTP/1.1\r\nAuthorization : Bearer {token}\r\n\r\n".encode())
        assert sock.recv(65536).startswith(b"HTTP/1.1 400")
    assert Client(logged_server.base).request("GET", f"/nowhere?token={token}").status == 404

    log_path = logged_server.log_path

    def logged_the_last_request() -> bool:
        return "/nowhere" in log_path.read_text()

    assert poll(logged_the_last_request, timeout_s=20)
    log = log_path.read_text()
    leaks = [line[:300] for line in log.splitlines() if "eyJ" in line]
    assert not leaks, (len(leaks), leaks)
    assert "token=[redacted]" in log  # the requests were logged, their tokens were not
    assert token.split(".")[2] not in log
