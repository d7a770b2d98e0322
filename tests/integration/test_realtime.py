"""Real-time in AWS shape: the Redis registry, the fan-out's own outbox cursor on
real PostgreSQL, posts through moto's ``apigatewaymanagementapi``, and the
WebSocket route handler with the sample events of ``events/``."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
import redis
from moto import mock_aws

from chalicelib import bootstrap
from chalicelib.adapters.apigw_connections import ApiGatewayPoster
from chalicelib.adapters.redis.realtime import RedisConnectionRegistry
from chalicelib.domain.changes import FeedCursor, feed_sealer
from chalicelib.domain.errors import DependencyUnavailable
from chalicelib.domain.realtime import Connection, Topic
from chalicelib.service_layer.fanout import FanOutReport
from tests.conftest import REDIS_URL, Invoker, admin_connection, make_token, namespace
from tests.polling import poll

pytestmark = pytest.mark.integration
EVENTS = Path(__file__).resolve().parents[2] / "events"
ENDPOINT = "https://abc123def4.execute-api.us-east-1.amazonaws.com/live"


def _org() -> str:
    return f"org-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def rt(settings: Any) -> Iterator[Any]:
    """A container with its own fan-out cursor and a moto management API."""
    with mock_aws():
        own = settings.model_copy(
            update={"realtime_consumer": f"t-{uuid.uuid4().hex[:8]}",
                    "realtime_endpoint_url": ENDPOINT, "realtime_parallel_posts": 4,
                    # the sample $connect events come from a page on this origin
                    "cors_origins": ("https://app.example.com",)}
        )  # fmt: skip
        built: Any = bootstrap.build(own)
        bootstrap.set_container(built)
        client = boto3.client("apigatewaymanagementapi", endpoint_url=ENDPOINT,
                              region_name="us-east-1")  # fmt: skip
        built.__dict__["realtime_poster"] = ApiGatewayPoster(ENDPOINT, "us-east-1", client=client)
        built.gone = set()

        def gone(params: dict[str, Any], **_: Any) -> Any:
            target = str(params.get("url_path", "")).rsplit("/", 1)[-1]
            if target in built.gone:
                return _Http(410), {"Error": {"Code": "GoneException", "Message": "gone"},
                                    "ResponseMetadata": {"HTTPStatusCode": 410}}  # fmt: skip
            return None

        client.meta.events.register("before-call.apigatewaymanagementapi.PostToConnection", gone)
        built.realtime_fanout().run_once()  # the cursor starts now: no history
        yield built
        bootstrap.set_container(None)
        built.close()


class _Http:
    def __init__(self, status: int) -> None:
        self.status_code = status
        self.headers: dict[str, str] = {}
        self.content = b""
        self.text = ""


def _posted(connection_id: str) -> list[dict[str, Any]]:
    """The frames moto's management API holds for a connection."""
    from moto.apigatewaymanagementapi.models import apigatewaymanagementapi_backends

    backend = apigatewaymanagementapi_backends["123456789012"]["us-east-1"]
    from urllib.parse import quote

    conn = backend.connections.get(connection_id) or backend.connections.get(quote(connection_id))
    raw = conn.data.decode() if conn is not None else ""
    frames, at, decoder = [], 0, json.JSONDecoder()
    while at < len(raw):
        frame, at = decoder.raw_decode(raw, at)
        frames.append(frame)
    return frames


def _fan_out(c: Any, frames: int) -> FanOutReport:
    """Drain until ``frames`` frames went out: the stream waits for every older
    transaction of the PostgreSQL cluster (other databases' too) to finish."""
    total = FanOutReport()

    def step() -> int:
        total.add(c.realtime_fanout().drain())
        return total.frames

    poll(step, lambda n: n >= frames, timeout_s=20)
    return total


def _connect(c: Any, conn_id: str, tenant: str, **frame: Any) -> None:
    token = make_token(org=tenant, sub="bob", roles=("reader",))
    c.realtime.connect(conn_id, c.stream_credentials(token, None))
    for answer in c.realtime.handle(conn_id, json.dumps({"action": "subscribe", **frame})):
        assert answer["type"] == "subscribed", answer


# --------------------------------------------------------------------- registry
def test_the_registry_scopes_subscribers_by_org(rt: Any) -> None:
    reg = rt.realtime_registry
    a, b = _org(), _org()
    reg.add(Connection("ca", a, "u", frozenset({"reader"})))
    reg.add(Connection("cb", b, "u", frozenset({"reader"})))
    for cid in ("ca", "cb"):
        assert reg.subscribe(reg.get(cid), Topic("tag", "plan"), 2) == 1
    assert reg.subscribers(a, [Topic("tag", "plan"), Topic("org")]) == {"ca"}
    assert reg.subscribe(reg.get("ca"), Topic("document", "d1"), 2) == 2
    assert reg.subscribe(reg.get("ca"), Topic("org"), 2) == -1  # the cap
    assert reg.drop_document(a, "d1") == 1 and reg.subscriptions("ca") == {Topic("tag", "plan")}
    reg.remove("ca")
    assert reg.get("ca") is None and reg.subscribers(a, [Topic("tag", "plan")]) == set()
    assert reg.subscribers(b, [Topic("tag", "plan")]) == {"cb"}
    keys = list(
        redis.Redis.from_url(REDIS_URL).scan_iter(
            match=f"{rt.realtime_registry.namespace.prefix}rt:*"
        )
    )
    assert keys and all(redis.Redis.from_url(REDIS_URL).ttl(k) > 0 for k in keys)


def test_an_unreachable_registry_is_a_dependency_error() -> None:
    dead = redis.Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.2)
    with pytest.raises(DependencyUnavailable):
        RedisConnectionRegistry(dead, namespace("x:")).get("c")


# ----------------------------------------------------------------------- fan-out
def test_fan_out_posts_changes_and_never_to_another_org(rt: Any) -> None:
    org, other = _org(), _org()
    _connect(rt, "mine", org, org=True)
    _connect(rt, "theirs", other, org=True)
    api = Invoker(make_token(org=org, roles=("writer",)))
    doc = api("POST", "/documents", {"title": "plan", "tags": ["q3"]}).json()
    patched = api("PATCH", f"/documents/{doc['id']}", {"title": "plan 2"},
                  headers={"Content-Type": "application/merge-patch+json",
                           "If-Match": doc["etag"]})  # fmt: skip
    assert patched.status == 200, patched
    report = _fan_out(rt, 2)
    frames = _posted("mine")
    assert [(f["id"], f["version"]) for f in frames] == [(doc["id"], 1), (doc["id"], 2)]
    assert frames[0]["etag"] == doc["etag"] and frames[0]["deleted"] is False
    assert _posted("theirs") == [] and report.refused == 0
    # the seq is a feed cursor of this org: GET /changes resumes after it
    feed = poll(lambda: api("GET", f"/changes?since={frames[0]['seq']}").json(),
                lambda f: f["changes"])  # fmt: skip
    assert [c["version"] for c in feed["changes"]][-1] == 2
    FeedCursor.parse(frames[1]["seq"], org, feed_sealer(rt.settings.page_token_secret))


def test_gone_connections_are_removed_and_others_still_receive(rt: Any) -> None:
    org = _org()
    for cid in ("left", "stays"):
        _connect(rt, cid, org, org=True)
    rt.gone.add("left")
    Invoker(make_token(org=org)).__call__("POST", "/documents", {"title": "x"})
    report = _fan_out(rt, 1)
    assert report.gone == 1 and rt.realtime_registry.get("left") is None
    assert len(_posted("stays")) == 1


def test_the_cursor_is_independent_of_the_search_sync(rt: Any) -> None:
    org = _org()
    _connect(rt, "c1", org, org=True)
    Invoker(make_token(org=org))("POST", "/documents", {"title": "x"})
    with admin_connection(rt) as conn:  # as if the search sync had processed every row
        conn.execute("UPDATE outbox SET processed_at = now()")
    assert _fan_out(rt, 1).frames == 1

    def backlog() -> Any:
        rt.realtime_fanout().drain()  # the cursor passes the row once it is below the horizon
        return rt.realtime_fanout().stats()["backlog"]

    assert poll(backlog, lambda n: n == 0, timeout_s=20) == 0
    assert len(_posted("c1")) == 1  # read again until then, never sent again
    with admin_connection(rt) as conn:
        row = conn.execute(
            "SELECT count(*) AS n FROM realtime_cursors WHERE name = %s",
            (rt.settings.realtime_consumer,),
        ).fetchone()
    assert row["n"] == 1


def test_a_failed_batch_leaves_the_cursor(rt: Any) -> None:
    org = _org()
    _connect(rt, "c1", org, org=True)
    Invoker(make_token(org=org))("POST", "/documents", {"title": "x"})
    fanout = rt.realtime_fanout()
    registry = fanout.registry

    class Broken:
        def __getattr__(self, name: str) -> Any:
            raise DependencyUnavailable("registry down")

    fanout.registry = Broken()
    with pytest.raises(DependencyUnavailable):
        poll(lambda: fanout.run_once().rows, timeout_s=20)  # raises once the row is due
    fanout.registry = registry
    assert _fan_out(rt, 1).frames == 1 and len(_posted("c1")) == 1


# ------------------------------------------------------------------------ routes
def _event(name: str, token: str) -> dict[str, Any]:
    text = (EVENTS / f"{name}.json").read_text().replace("{{token}}", token)
    event: dict[str, Any] = json.loads(text)
    return event


def test_the_websocket_route_events(rt: Any) -> None:
    from devtools.events import LambdaContext
    from functions.realtime import ws_handler

    org = _org()
    api = Invoker(make_token(org=org, roles=("writer",)))
    assert api("PUT", "/documents/event-doc", {"title": "t"}).status == 201
    connect = _event("ws_connect", make_token(org=org, roles=("reader",)))
    conn_id = connect["requestContext"]["connectionId"] + uuid.uuid4().hex[:6]
    connect["requestContext"]["connectionId"] = conn_id
    answer = ws_handler(connect, LambdaContext.new())
    assert answer["statusCode"] == 200
    assert answer["headers"] == {"Sec-WebSocket-Protocol": "docs.v1"}
    assert rt.realtime_registry.get(conn_id).org == org
    subscribe = _event("ws_subscribe", "")
    subscribe["requestContext"]["connectionId"] = conn_id
    assert ws_handler(subscribe, LambdaContext.new())["statusCode"] == 200
    assert _posted(conn_id)[-1]["type"] == "subscribed"
    subscribe["body"] = "not json"
    ws_handler(subscribe, LambdaContext.new())
    assert _posted(conn_id)[-1]["status"] == 400  # an error frame; the connection stays
    disconnect = _event("ws_disconnect", "")
    disconnect["requestContext"]["connectionId"] = conn_id
    assert ws_handler(disconnect, LambdaContext.new())["statusCode"] == 200
    assert rt.realtime_registry.get(conn_id) is None


@pytest.mark.parametrize("token", ["", "bearer.not.a.jwt", "query"])
def test_connect_refuses_without_a_valid_token(rt: Any, token: str) -> None:
    from devtools.events import LambdaContext
    from functions.realtime import ws_handler

    event = _event("ws_connect", token)
    if token == "query":
        event["headers"].pop("Sec-WebSocket-Protocol")
        event["queryStringParameters"] = {"token": make_token(roles=())}  # no read role
    else:
        event["headers"]["Sec-WebSocket-Protocol"] = token or "docs.v1"
    answer = ws_handler(event, LambdaContext.new())
    assert answer["statusCode"] == (403 if token == "query" else 401)
    assert rt.realtime_registry.get(event["requestContext"]["connectionId"]) is None


def test_the_lambda_path_answers_eventsource_with_one_batch(rt: Any) -> None:
    org = _org()
    api = Invoker(make_token(org=org, roles=("writer",)))
    doc = api("POST", "/documents", {"title": "x"}).json()
    r = poll(lambda: api("GET", "/changes?feed=eventsource&since=0"), lambda r: doc["id"] in r.text)
    assert r.status == 200 and r.headers["content-type"].startswith("text/event-stream")
    assert r.text.startswith("retry: ") and f'"id": "{doc["id"]}"' in r.text
    last = [line[4:] for line in r.text.splitlines() if line.startswith("id: ")][-1]
    later = api("GET", "/changes?feed=eventsource", headers={"Last-Event-ID": last})
    assert "event: caught-up" in later.text and doc["id"] not in later.text
    spec = api("GET", "/openapi.json").json()["paths"]["/changes"]["get"]
    assert "text/event-stream" in spec["responses"]["200"]["content"]


def test_the_fan_out_handler_drains_on_nudges_and_on_the_schedule(rt: Any) -> None:
    from devtools.events import LambdaContext
    from functions.realtime import fanout_handler

    org = _org()
    _connect(rt, "c-handler", org, org=True)
    Invoker(make_token(org=org))("POST", "/documents", {"title": "x"})
    nudge = json.loads((EVENTS / "sqs_realtime_nudge.json").read_text())
    sent = poll(
        lambda: fanout_handler(nudge, LambdaContext.new())["frames"] or len(_posted("c-handler"))
    )
    assert sent >= 1 and len(_posted("c-handler")) == 1
    schedule = json.loads((EVENTS / "scheduled_sweep.json").read_text())
    result = fanout_handler(schedule, LambdaContext.new())
    assert "lag_s" in result and "backlog" in result


@pytest.mark.parametrize(
    ("origin", "status"),
    [
        ("https://app.example.com", 200),
        ("https://evil.example.net", 403),
        ("null", 403),
        (None, 200),
    ],
)
def test_connect_checks_a_browsers_origin(
    rt: Any, monkeypatch: Any, origin: Any, status: int
) -> None:
    """A browser on another origin is refused; a client without Origin is no browser."""
    from devtools.events import LambdaContext
    from functions.realtime import ws_handler

    event = _event("ws_connect", make_token(org=_org(), roles=("reader",)))
    event["requestContext"]["connectionId"] += uuid.uuid4().hex[:6]
    event["headers"].pop("Origin")
    if origin is not None:
        event["headers"]["Origin"] = origin
    assert ws_handler(event, LambdaContext.new())["statusCode"] == status
    registered = rt.realtime_registry.get(event["requestContext"]["connectionId"])
    assert (registered is not None) == (status == 200)
