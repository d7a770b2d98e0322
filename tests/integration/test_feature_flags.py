"""Feature flags in the real app with the file store (docs/feature-flags.md): the
``realtime`` flag decides, per org and per user, whether a WebSocket ``$connect``
(functions/realtime.py, the sample event) and ``feed=eventsource`` are served;
real PostgreSQL and Redis behind them."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from chalicelib import bootstrap
from tests.conftest import Invoker, make_token

pytestmark = pytest.mark.integration
EVENTS = Path(__file__).resolve().parents[2] / "events"


def _org() -> str:
    return f"org-{uuid.uuid4().hex[:8]}"


def _only(key: str, value: str, *, default: bool) -> dict[str, Any]:
    """A ``realtime`` flag that is ``default`` except for one org or user."""
    rule = {"when_match": not default,
            "conditions": [{"action": "EQUALS", "key": key, "value": value}]}  # fmt: skip
    return {"realtime": {"default": default, "rules": {f"{key} {value}": rule}}}


@pytest.fixture
def with_flags(settings: Any, tmp_path: Path) -> Iterator[Callable[[Any], Any]]:
    """Install a container whose flags come from a file holding ``document`` (a
    dict, or raw text), as the local stack reads config/feature-flags.json."""
    built: list[Any] = []

    def install(document: Any) -> Any:
        path = tmp_path / f"flags-{len(built)}.json"
        path.write_text(document if isinstance(document, str) else json.dumps(document))
        own = settings.model_copy(
            update={"feature_flags_store": "file", "feature_flags_source": str(path),
                    "cors_origins": ("https://app.example.com",)}  # the sample events' page
        )  # fmt: skip
        container: Any = bootstrap.build(own)
        bootstrap.set_container(container)
        built.append(container)
        return container

    yield install
    bootstrap.set_container(None)
    for container in built:
        container.close()


def _connect(org: str, sub: str = "bob") -> tuple[int, str, str]:
    from devtools.events import LambdaContext
    from functions.realtime import ws_handler

    token = make_token(org=org, sub=sub, roles=("reader",))
    text = (EVENTS / "ws_connect.json").read_text().replace("{{token}}", token)
    event = json.loads(text)
    conn_id = f"flag-{uuid.uuid4().hex[:10]}"
    event["requestContext"]["connectionId"] = conn_id
    answer = ws_handler(event, LambdaContext.new())
    return int(answer["statusCode"]), str(answer.get("body") or ""), conn_id


def test_realtime_off_for_an_org_refuses_its_websockets_and_only_its(with_flags: Any) -> None:
    off, on = _org(), _org()
    c = with_flags(_only("org", off, default=True))
    status, body, conn_id = _connect(off)
    assert status == 403 and "'realtime' feature" in body
    assert c.realtime_registry.get(conn_id) is None  # nothing registered
    status, _, conn_id = _connect(on)
    assert status == 200 and c.realtime_registry.get(conn_id) is not None


def test_realtime_on_for_one_user_only(with_flags: Any) -> None:
    org = _org()
    c = with_flags(_only("user", "pilot", default=False))
    assert _connect(org, sub="pilot")[0] == 200
    status, _, conn_id = _connect(org, sub="bob")
    assert status == 403 and c.realtime_registry.get(conn_id) is None


def test_realtime_off_refuses_the_event_stream_feed_not_the_others(with_flags: Any) -> None:
    off, on = _org(), _org()
    with_flags(_only("org", off, default=True))
    refused = Invoker(make_token(org=off, roles=("reader",)))("GET", "/changes?feed=eventsource")
    assert refused.status == 403
    assert refused.headers["content-type"].startswith("application/problem+json")
    assert refused.json()["type"].endswith("/problems/feature-disabled")
    fallback = Invoker(make_token(org=off, roles=("reader",)))("GET", "/changes?feed=normal")
    assert fallback.status == 200  # polling the feed is the fallback
    served = Invoker(make_token(org=on, roles=("reader",)))("GET", "/changes?feed=eventsource")
    assert served.status == 200 and served.headers["content-type"].startswith("text/event-stream")


@pytest.mark.parametrize("document", [None, "{not json", {"realtime": {"default": "maybe"}}])
def test_an_unreadable_store_gives_the_defaults_not_errors(with_flags: Any, document: Any) -> None:
    """A missing file, malformed JSON, a document Powertools rejects: every flag
    answers its registry default (realtime on, the new features off)."""
    c = with_flags("{}")
    if document is None:
        Path(c.settings.feature_flags_source).unlink()
    else:
        with_flags(document)
        c = bootstrap.container()
    assert _connect(_org())[0] == 200
    assert c.flags.enabled("webhooks", org="acme") is False
    assert c.flags.enabled("share_notifications", org="acme", user="u") is False


def test_webhooks_off_for_an_org_refuses_a_new_endpoint_there_only(with_flags: Any) -> None:
    off, on = _org(), _org()
    rule = {"when_match": False,
            "conditions": [{"action": "EQUALS", "key": "org", "value": off}]}  # fmt: skip
    with_flags({"webhooks": {"default": True, "rules": {f"org {off}": rule}}})
    body = {"url": "https://hooks.example.com/in", "events": ["document.updated"]}
    refused = Invoker(make_token(org=off, roles=("admin",)))("POST", "/webhooks", body)
    assert refused.status == 403
    assert refused.json()["type"].endswith("/problems/feature-disabled")
    listed = Invoker(make_token(org=off, roles=("admin",)))("GET", "/webhooks")
    assert listed.status == 200 and listed.json() == {"items": []}  # nothing was registered
    created = Invoker(make_token(org=on, roles=("admin",)))("POST", "/webhooks", body)
    assert created.status == 201 and created.json()["secret"].startswith("whsec_")
