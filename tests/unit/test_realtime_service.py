"""Real-time use cases and the fan-out against in-memory fakes of their ports."""

from __future__ import annotations

import json
from typing import Any

import pytest

from chalicelib.api.problems import error_frame_of
from chalicelib.domain.errors import Forbidden
from chalicelib.domain.principal import Principal
from chalicelib.domain.realtime import OrgRoleReadFilter, Topic, parse_client_frame
from chalicelib.service_layer.documents import DocumentService
from chalicelib.service_layer.fanout import FanOut
from chalicelib.service_layer.realtime import RealtimeService
from chalicelib.settings_groups import RealtimeSettings
from tests.unit.fakes import FakeUnitOfWork, coherence
from tests.unit.realtime_fakes import FakePoster, FakeRegistry, FakeStream, live

WRITER = Principal("alice", "acme", frozenset({"writer"}))
READER = Principal("bob", "acme", frozenset({"reader"}))
OTHER = Principal("eve", "evil", frozenset({"admin"}))


class OnlyListed:
    """A ReadFilter that lets ``user`` read only ``ids`` (stands in for grants)."""

    def __init__(self, user: str, ids: set[str]) -> None:
        self.user, self.ids = user, ids

    def readable_ids(self, org: str, user: str, roles: frozenset[str], doc_ids: Any) -> set[str]:
        return set(doc_ids) & self.ids if user == self.user else set(doc_ids)


class World:
    def __init__(self, read_filter: Any = None, **options: Any) -> None:
        self.uow = FakeUnitOfWork()
        self.documents = DocumentService(self.uow, coherence(self.uow), page_secret="s")
        self.registry = FakeRegistry()
        self.poster = FakePoster()
        self.filter = read_filter or OrgRoleReadFilter()
        self.service = RealtimeService(
            self.registry, self.uow, self.filter, page_secret="s",
            settings=RealtimeSettings(max_subscriptions=3), error_frame=error_frame_of,
        )  # fmt: skip
        self.stream = FakeStream(self.uow)
        self.fanout = FanOut(self.stream, self.registry, self.poster, self.filter,
                             page_secret="s", settings=RealtimeSettings(parallel_posts=1),
                             retry_base_s=0.0, sleep=lambda s: None, **options)  # fmt: skip

    def send(self, conn: str, frame: dict[str, Any]) -> list[dict[str, Any]]:
        return self.service.handle(conn, json.dumps(frame))

    def received(self, conn: str) -> list[dict[str, Any]]:
        return [json.loads(f) for f in self.poster.sent.get(conn, [])]


@pytest.fixture
def world() -> World:
    return World()


def test_a_subscriber_receives_each_change_in_order(world: World) -> None:
    doc = world.documents.create(WRITER, {"title": "a"})
    world.service.connect("c1", live(READER))
    assert world.send("c1", {"action": "subscribe", "document": doc.id})[-1]["type"] == (
        "subscribed"
    )
    doc = world.documents.change(WRITER, doc.id, "application/merge-patch+json",
                                 {"title": "b"}, if_match=doc.etag)  # fmt: skip
    world.documents.delete(WRITER, doc.id, if_match=None)
    report = world.fanout.drain()
    frames = world.received("c1")
    assert [(f["type"], f["version"], f["deleted"]) for f in frames] == [
        ("change", 1, False), ("change", 2, False), ("change", 3, True)
    ]  # fmt: skip
    assert frames[1]["etag"] == doc.etag and frames[1]["id"] == doc.id
    assert report.frames == 3


def test_another_org_never_receives_a_change(world: World) -> None:
    world.service.connect("mine", live(READER))
    world.service.connect("theirs", live(OTHER))
    world.send("mine", {"action": "subscribe", "org": True})
    world.send("theirs", {"action": "subscribe", "org": True})
    world.documents.create(WRITER, {"title": "secret", "tags": ["x"]})
    world.fanout.drain()
    assert len(world.received("mine")) == 1
    assert world.received("theirs") == []


def test_a_registry_that_mixes_orgs_up_is_refused_at_fan_out(world: World) -> None:
    world.service.connect("theirs", live(OTHER))
    world.send("theirs", {"action": "subscribe", "org": True})
    world.registry.subscribers = lambda org, topics: {"theirs"}  # type: ignore[method-assign]
    world.documents.create(WRITER, {"title": "secret"})
    report = world.fanout.drain()
    assert world.received("theirs") == [] and report.refused == 1


def test_tag_subscriptions_and_the_read_filter(world: World) -> None:
    w = World(read_filter=OnlyListed("bob", set()))
    w.service.connect("bob", live(READER))
    w.service.connect("carol", live(Principal("carol", "acme", frozenset({"reader"}))))
    for conn in ("bob", "carol"):
        w.send(conn, {"action": "subscribe", "tag": "plan"})
    w.documents.create(WRITER, {"title": "t", "tags": ["plan"]})
    w.documents.create(WRITER, {"title": "u", "tags": ["other"]})
    w.fanout.drain()
    assert len(w.received("carol")) == 1
    assert w.received("bob") == []  # the filter says bob may not read it


def test_subscribing_to_another_orgs_document_is_a_missing_document(world: World) -> None:
    theirs = world.documents.create(OTHER, {"title": "theirs"})
    world.service.connect("c1", live(READER))
    [frame] = world.send("c1", {"action": "subscribe", "document": theirs.id})
    [missing] = world.send("c1", {"action": "subscribe", "document": "nope"})
    assert frame["type"] == "error" and frame["status"] == 404
    assert {k: v for k, v in frame.items() if k != "detail"} == {
        k: v for k, v in missing.items() if k != "detail"
    }


@pytest.mark.parametrize(
    "raw",
    ["not json", "[]", '{"action": "dance"}', '{"action": "subscribe"}',
     '{"action": "subscribe", "document": "a", "tag": "b"}', '{"action": "subscribe", "org": 1}',
     '{"action": "subscribe", "document": "../x"}', "x" * 5000],
)  # fmt: skip
def test_bad_frames_get_error_frames(world: World, raw: str) -> None:
    world.service.connect("c1", live(READER))
    [frame] = world.service.handle("c1", raw)
    assert frame["type"] == "error" and frame["status"] in (400, 413)
    assert frame["title"] and frame["detail"]


def test_the_subscription_cap(world: World) -> None:
    world.service.connect("c1", live(READER))
    for tag in ("a", "b", "c"):
        assert world.send("c1", {"action": "subscribe", "tag": tag})[-1]["type"] == "subscribed"
    [frame] = world.send("c1", {"action": "subscribe", "tag": "d"})
    assert frame["status"] == 422 and "3" in frame["detail"]
    world.send("c1", {"action": "unsubscribe", "tag": "a"})
    assert world.send("c1", {"action": "subscribe", "tag": "d"})[-1]["subscriptions"] == 3


def test_connect_needs_a_read_role_and_frames_need_a_registration(world: World) -> None:
    with pytest.raises(Forbidden):
        world.service.connect("c1", live(Principal("x", "acme", frozenset())))
    [frame] = world.send("unknown", {"action": "subscribe", "org": True})
    assert frame["status"] == 401


def test_gone_connections_are_dropped_and_others_still_receive(world: World) -> None:
    for conn in ("gone", "slow", "fine"):
        world.service.connect(conn, live(READER))
        world.send(conn, {"action": "subscribe", "org": True})
    world.poster.script = {"gone": ["gone"], "slow": ["throttled"] * 10}
    world.documents.create(WRITER, {"title": "a"})
    report = world.fanout.drain()
    assert len(world.received("fine")) == 1
    assert report.gone == 1 and report.dropped == 1
    assert world.registry.get("gone") is None and world.registry.get("slow") is None
    assert world.poster.closed == ["slow"]  # closed: it reconnects and resumes


def test_throttling_is_retried(world: World) -> None:
    world.service.connect("c1", live(READER))
    world.send("c1", {"action": "subscribe", "org": True})
    world.poster.script = {"c1": ["throttled", "throttled"]}
    world.documents.create(WRITER, {"title": "a"})
    assert world.fanout.drain().frames == 1 and len(world.received("c1")) == 1


def test_a_failed_batch_is_sent_again(world: World) -> None:
    world.service.connect("c1", live(READER))
    world.send("c1", {"action": "subscribe", "org": True})
    world.documents.create(WRITER, {"title": "a"})
    broken = world.registry.connections
    world.registry.connections = lambda ids: (_ for _ in ()).throw(RuntimeError("down"))  # type: ignore[method-assign]
    with pytest.raises(RuntimeError):
        world.fanout.run_once()
    world.registry.connections = broken  # type: ignore[method-assign]
    world.fanout.drain()
    assert len(world.received("c1")) == 1


def test_catch_up_from_a_cursor_then_live(world: World) -> None:
    world.service.connect("c1", live(READER))
    world.send("c1", {"action": "subscribe", "org": True})
    first = world.documents.create(WRITER, {"title": "a"})
    world.fanout.drain()
    [seen] = world.received("c1")
    world.service.disconnect("c1")
    missed = world.documents.create(WRITER, {"title": "b"})
    world.fanout.drain()  # nobody listening
    world.service.connect("c2", live(READER))
    frames = world.send("c2", {"action": "subscribe", "org": True, "since": seen["seq"]})
    assert [f["id"] for f in frames if f["type"] == "change"] == [missed.id]
    assert frames[-1]["type"] == "subscribed" and frames[-1]["more"] is False
    assert first.id != missed.id
    [bad] = world.send("c2", {"action": "subscribe", "org": True, "since": "forged"})
    assert bad["status"] == 400


def test_drop_document_forgets_its_subscriptions(world: World) -> None:
    doc = world.documents.create(WRITER, {"title": "a"})
    world.service.connect("c1", live(READER))
    world.send("c1", {"action": "subscribe", "document": doc.id})
    assert world.service.drop_document("acme", doc.id) == 1
    assert world.registry.subscriptions("c1") == set()


def test_topic_keys_round_trip() -> None:
    for topic in (Topic("document", "a:b"), Topic("tag", "1:x"), Topic("org")):
        assert Topic.from_key(topic.key) == topic
    assert parse_client_frame('{"action":"subscribe","org":true}').topic == Topic("org")


def test_rows_above_the_horizon_go_out_at_once_but_hold_the_cursor(world: World) -> None:
    world.service.connect("c1", live(READER))
    world.send("c1", {"action": "subscribe", "org": True})
    world.stream.horizon = world.stream.cursor + 1  # an older transaction still runs
    doc = world.documents.create(WRITER, {"title": "a"})
    first = world.fanout.drain()
    assert first.frames == 1 and first.advanced == 0
    assert world.fanout.drain().frames == 0  # read again, not sent again
    world.stream.horizon = None  # the older transaction ended
    assert world.fanout.drain().advanced == 1
    assert [f["id"] for f in world.received("c1")] == [doc.id]


def test_the_asyncapi_document_describes_the_frames_the_code_sends() -> None:
    from pathlib import Path

    import yaml

    from chalicelib.domain.realtime import change_frame, error_frame

    doc = yaml.safe_load((Path(__file__).parents[2] / "docs" / "asyncapi.yaml").read_text())
    messages = doc["components"]["messages"]
    change = messages["change"]["payload"]
    assert set(change["required"]) == set(change_frame("d", 1, '"e"', False, "s"))
    assert set(messages["error"]["payload"]["required"]) == set(error_frame(400, "t", "d"))
    assert {"subscribe", "unsubscribe", "ping", "subscribed", "unsubscribed", "pong"} <= set(
        messages
    )


def test_a_subscriber_that_comes_while_a_row_waits_above_the_horizon_still_gets_it(
    world: World,
) -> None:
    """Its catch-up reads the feed, which stops at the horizon: the fan-out, which
    reads the row again until the horizon passes it, must send it to the newcomer
    (and not again to whoever had it)."""
    world.service.connect("c1", live(READER))
    world.send("c1", {"action": "subscribe", "org": True})
    world.stream.horizon = world.stream.cursor + 1  # an older transaction still runs
    doc = world.documents.create(WRITER, {"title": "a"})
    assert world.fanout.drain().frames == 1  # c1 has it; the row waits above the horizon
    world.service.connect("c2", live(READER))
    world.send("c2", {"action": "subscribe", "org": True})
    assert world.fanout.drain().frames == 1  # read again: to c2 only
    assert world.fanout.drain().frames == 0
    world.stream.horizon = None
    assert world.fanout.drain().advanced == 1
    assert [f["id"] for f in world.received("c1")] == [doc.id]
    assert [f["id"] for f in world.received("c2")] == [doc.id]
