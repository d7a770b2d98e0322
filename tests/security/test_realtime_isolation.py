"""Attacks on real-time across orgs: crafted orgs and topics against the Redis
registry's keys, another org's cursor in a subscribe, another org's document."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest

from chalicelib.domain.changes import FeedCursor, feed_sealer
from chalicelib.domain.principal import Principal
from chalicelib.domain.realtime import Connection, Topic
from tests.conftest import make_token

pytestmark = pytest.mark.integration


@pytest.mark.parametrize(
    ("victim", "attacker", "topic"),
    [
        ("acme", "acme3:tag", Topic("tag", "x")),  # the org swallows the topic's kind
        ("a", "a8:document", Topic("document", "d")),
        ("acme", "4:acme", Topic("org")),  # the encoded victim as an org name
        ("x:y", "x", Topic("tag", "y:t")),
    ],
)
def test_crafted_orgs_never_reach_another_orgs_subscribers(
    container: Any, victim: str, attacker: str, topic: Topic
) -> None:
    reg = container.realtime_registry
    tag = uuid.uuid4().hex[:6]
    victim, attacker = f"{victim}{tag}", f"{attacker}{tag}"
    conn = Connection(f"v-{tag}", victim, "alice", frozenset({"reader"}))
    reg.add(conn)
    assert reg.subscribe(conn, topic, 10) == 1
    crafted = [topic, Topic("org"), Topic("tag", topic.value), Topic("document", topic.value)]
    assert reg.subscribers(attacker, crafted) == set()
    assert reg.subscribers(victim, [topic]) == {conn.id}
    assert reg.drop_document(attacker, topic.value) == 0
    assert reg.subscriptions(conn.id) == {topic}


def test_another_orgs_cursor_or_document_gets_nothing(container: Any) -> None:
    victim, attacker = f"v-{uuid.uuid4().hex[:6]}", f"m-{uuid.uuid4().hex[:6]}"
    writer = Principal("alice", victim, frozenset({"writer"}))
    doc = container.documents.create(writer, {"title": "secret"})
    sealer = feed_sealer(container.settings.page_token_secret)
    stolen = FeedCursor(0, 0).encode(victim, sealer)  # a cursor of the victim's feed
    service = container.realtime
    token = make_token(org=attacker, sub="mallory", roles=("admin",))
    service.connect("mallory", container.stream_credentials(token, None))
    [cursor] = service.handle("mallory", json.dumps({"action": "subscribe", "org": True,
                                                     "since": stolen}))  # fmt: skip
    assert cursor["type"] == "error" and cursor["status"] == 400
    [missing] = service.handle("mallory", json.dumps({"action": "subscribe",
                                                      "document": doc.id}))  # fmt: skip
    assert missing["status"] == 404 and "secret" not in json.dumps(missing)
    assert container.realtime_registry.subscriptions("mallory") == set()
