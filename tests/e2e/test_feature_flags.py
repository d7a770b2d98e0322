"""The ``realtime`` feature flag on the local server, black-box: its WebSocket
handshake and its streamed ``feed=eventsource`` (devtools/realtime_hub.py) are
refused for an org the flag file turns real-time off for, and served for others."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from tests.conftest import REDIS_URL, make_token
from tests.e2e.conftest import Client, LocalServer, server_env

pytestmark = pytest.mark.e2e
OFF = f"rt-off-{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="module")
def flagged_server(
    database_url: str,
    redis_prefix: str,
    local_search_env: dict[str, str],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[LocalServer]:
    rule = {"when_match": False, "conditions": [{"action": "EQUALS", "key": "org", "value": OFF}]}
    path: Path = tmp_path_factory.mktemp("flags") / "flags.json"
    path.write_text(json.dumps({"realtime": {"default": True, "rules": {"off": rule}}}))
    env = server_env(database_url, REDIS_URL, redis_prefix, **local_search_env,
                     DOCS_FEATURE_FLAGS_STORE="file",
                     DOCS_FEATURE_FLAGS_SOURCE=str(path))  # fmt: skip
    running = LocalServer(env)
    yield running
    running.stop()


def _ws_status(server: LocalServer, org: str) -> int:
    token = make_token(org=org, roles=("reader",))
    try:
        with connect(f"ws://127.0.0.1:{server.port}/realtime?token={token}", open_timeout=20):
            return 101
    except InvalidStatus as refused:
        return int(refused.response.status_code)


def test_the_local_websocket_follows_the_flag(flagged_server: LocalServer) -> None:
    assert _ws_status(flagged_server, OFF) == 403
    assert _ws_status(flagged_server, f"rt-on-{uuid.uuid4().hex[:8]}") == 101


def test_the_local_event_stream_follows_the_flag(flagged_server: LocalServer) -> None:
    refused = Client(flagged_server.base, make_token(org=OFF, roles=("reader",))).request(
        "GET", "/changes?feed=eventsource"
    )
    assert refused.status == 403
    assert json.loads(refused.body)["type"].endswith("/problems/feature-disabled")
    polled = Client(flagged_server.base, make_token(org=OFF, roles=("reader",))).request(
        "GET", "/changes?feed=normal"
    )
    assert polled.status == 200  # the fallback
