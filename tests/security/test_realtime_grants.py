"""Real-time subscriptions read through the document permissions:
a subscriber who may not read a private document never receives its change
frames, by org or by tag, and subscribing to it by id answers like a missing
document; a grantee receives them; a deletion still reaches the document's readers.

Real PostgreSQL and Redis; the fan-out (its own outbox cursor) posts to a
recording poster instead of API Gateway.  Writes go through the HTTP routes.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections import defaultdict
from collections.abc import Iterator
from typing import Any

import pytest

from chalicelib import bootstrap
from tests.conftest import Invoker, make_token
from tests.polling import poll

pytestmark = pytest.mark.integration


class RecordingPoster:
    """Every frame posted, per connection (implements ``Poster``), by the connection's
    name within its test (its id is ``<org>/<name>``: ids are global, orgs per test)."""

    def __init__(self) -> None:
        self.frames: dict[str, list[dict[str, Any]]] = defaultdict(list)
        self.lock = threading.Lock()

    def post(self, connection_id: str, data: str) -> str:
        with self.lock:
            self.frames[connection_id.split("/", 1)[-1]].append(json.loads(data))
        return "ok"

    def owns(self, connection_id: str) -> bool:
        return True

    def close(self, connection_id: str, code: int = 1011, reason: str = "") -> None:
        pass

    def ids(self, connection_id: str) -> list[tuple[str, int, bool]]:
        with self.lock:
            got = list(self.frames[connection_id])
        return [(f["id"], f["version"], f["deleted"]) for f in got]


@pytest.fixture
def rt(settings: Any) -> Iterator[Any]:
    """A container with its own fan-out cursor, posting to a recording poster."""
    built: Any = bootstrap.build(
        settings.model_copy(update={"realtime_consumer": f"g-{uuid.uuid4().hex[:8]}"})
    )
    bootstrap.set_container(built)
    built.poster = RecordingPoster()
    built.fanout = built.realtime_fanout(built.poster)
    built.fanout.run_once()  # the cursor starts now: no history
    yield built
    bootstrap.set_container(None)
    built.close()


def _subscribe(rt: Any, conn_id: str, tenant: str, user: str, **topic: Any) -> dict[str, Any]:
    """Connect (role reader) and subscribe; the last answer frame.  Connection ids
    are global: each test's are named after its org."""
    conn_id = f"{tenant}/{conn_id}"
    if rt.realtime_registry.get(conn_id) is None:
        token = make_token(org=tenant, sub=user, roles=("reader",))
        rt.realtime.connect(conn_id, rt.stream_credentials(token, None))
    answers = rt.realtime.handle(conn_id, json.dumps({"action": "subscribe", **topic}))
    return dict(answers[-1])


def _until_seen(rt: Any, conn_id: str, doc_id: str, version: int) -> None:
    """Fan out until ``conn_id`` received ``doc_id`` at ``version`` (a marker: every
    change committed before it was handled by then)."""

    def step() -> list[tuple[str, int, bool]]:
        rt.fanout.drain()
        return list(rt.poster.ids(conn_id))

    seen = poll(step, lambda got: any(s[:2] == (doc_id, version) for s in got), timeout_s=20)
    assert any(s[:2] == (doc_id, version) for s in seen), (conn_id, doc_id, version, seen)


def test_private_documents_reach_only_their_readers_over_realtime(rt: Any) -> None:
    org = f"rtg-{uuid.uuid4().hex[:8]}"
    alice = Invoker(make_token(org=org, sub="alice", roles=("writer",)))
    tag = f"plan-{uuid.uuid4().hex[:6]}"
    r = alice("POST", "/documents", {"title": "private plan", "tags": [tag],
                                     "visibility": "private"})  # fmt: skip
    assert r.status == 201, r
    secret = r.json()
    r = alice("PUT", f"/documents/{secret['id']}/grants/bob", {"role": "reader"})
    assert r.status == 200, r

    # carol (reader, no grant) and bob (reader, grantee): by org and by tag
    for user in ("carol", "bob"):
        assert _subscribe(rt, f"{user}-org", org, user, org=True)["type"] == "subscribed"
        assert _subscribe(rt, f"{user}-tag", org, user, tag=tag)["type"] == "subscribed"
    # by id: carol is told what a missing document tells her, bob is subscribed
    refused = _subscribe(rt, "carol-doc", org, "carol", document=secret["id"])
    missing = _subscribe(rt, "carol-doc", org, "carol", document="no-such-document")
    assert refused["type"] == "error" and refused["status"] == 404
    assert {k: v for k, v in refused.items() if k != "detail"} == {
        k: v for k, v in missing.items() if k != "detail"
    }
    assert refused["detail"] == missing["detail"].replace("no-such-document", secret["id"])
    assert "private plan" not in json.dumps(refused)
    assert rt.realtime_registry.subscriptions(f"{org}/carol-doc") == set()
    assert _subscribe(rt, "bob-doc", org, "bob", document=secret["id"])["type"] == "subscribed"

    # changes of the private document, then an open one with the same tag (the marker)
    r = alice("PUT", f"/documents/{secret['id']}", {"title": "private plan 2", "tags": [tag]},
              headers={"If-Match": "*"})  # fmt: skip
    assert r.status == 200, r
    edited = r.json()["version"]
    r = alice("POST", "/documents", {"title": "open note", "tags": [tag]})
    assert r.status == 201, r
    marker = r.json()
    for conn_id in ("carol-org", "carol-tag", "bob-org", "bob-tag"):
        _until_seen(rt, conn_id, marker["id"], 1)
    _until_seen(rt, "bob-doc", secret["id"], edited)

    for conn_id in ("carol-org", "carol-tag", "carol-doc"):
        assert all(i != secret["id"] for i, _, _ in rt.poster.ids(conn_id)), conn_id
    for conn_id in ("bob-org", "bob-tag", "bob-doc"):
        got = [v for i, v, _ in rt.poster.ids(conn_id) if i == secret["id"]]
        assert edited in got, (conn_id, got)

    # a deletion: the private one reaches its grantee only, an open one every reader
    r = _subscribe(rt, "carol-doc", org, "carol", document=marker["id"])
    assert r["type"] == "subscribed"
    for doc in (secret, marker):
        assert alice("DELETE", f"/documents/{doc['id']}", headers={"If-Match": "*"}).status == 204
    r = alice("POST", "/documents", {"title": "after", "tags": [tag]})
    after = r.json()["id"]
    for conn_id in ("carol-org", "carol-tag", "bob-org", "bob-tag"):
        _until_seen(rt, conn_id, after, 1)
    _until_seen(rt, "bob-doc", secret["id"], edited + 1)
    _until_seen(rt, "carol-doc", marker["id"], 2)
    for conn_id in ("bob-org", "bob-tag", "bob-doc"):
        assert (secret["id"], edited + 1, True) in rt.poster.ids(conn_id), conn_id
    for conn_id in ("carol-org", "carol-tag", "carol-doc"):
        seen = rt.poster.ids(conn_id)
        assert all(i != secret["id"] for i, _, _ in seen), conn_id
        if conn_id != "carol-doc":
            assert (marker["id"], 2, True) in seen, (conn_id, seen)
    assert (marker["id"], 2, True) in rt.poster.ids("carol-doc")


def test_a_grant_removed_stops_the_frames(rt: Any) -> None:
    """Readability is decided when a change goes out, not when one subscribed: a
    grantee whose grant is removed receives nothing more of the document."""
    org = f"rtg-{uuid.uuid4().hex[:8]}"
    alice = Invoker(make_token(org=org, sub="alice", roles=("writer",)))
    r = alice("POST", "/documents", {"title": "private", "visibility": "private"})
    doc = r.json()
    assert alice("PUT", f"/documents/{doc['id']}/grants/bob", {"role": "reader"}).status == 200
    assert _subscribe(rt, "bob-doc", org, "bob", document=doc["id"])["type"] == "subscribed"
    assert _subscribe(rt, "bob-org", org, "bob", org=True)["type"] == "subscribed"
    assert alice("DELETE", f"/documents/{doc['id']}/grants/bob").status == 204
    r = alice("PUT", f"/documents/{doc['id']}", {"title": "private, later"},
              headers={"If-Match": "*"})  # fmt: skip
    assert r.status == 200, r
    later = r.json()["version"]
    marker = alice("POST", "/documents", {"title": "open"}).json()["id"]
    _until_seen(rt, "bob-org", marker, 1)
    for conn_id in ("bob-doc", "bob-org"):
        got = [v for i, v, _ in rt.poster.ids(conn_id) if i == doc["id"]]
        assert all(v < later for v in got), (conn_id, got)
