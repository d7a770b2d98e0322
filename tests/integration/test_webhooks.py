"""Signed webhooks (docs/webhooks.md) through the Lambda handler and the real
deliverer, against real PostgreSQL and a local HTTP receiver (a thread):
Standard Webhooks signatures, per-document order, retries, dead letters,
disabling, replay, secret rotation, admins only.

Each test has a database of its own (the deliverer consumes every org's outbox).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from chalicelib.adapters.webhook_http import sender_for
from chalicelib.config import Settings
from tests.conftest import Invoker, admin_sql, fresh_container, make_token
from tests.polling import poll
from tests.webhook_receiver import Receiver, receiver

pytestmark = pytest.mark.integration
ALL = ["document.created", "document.updated", "document.deleted", "document.restored",
       "grant.changed", "upload.processed", "document.purged"]  # fmt: skip


@pytest.fixture
def hooks(settings: Settings) -> Iterator[Any]:
    with fresh_container(
        settings,
        webhooks_insecure_local=True,
        webhooks_retry_base_s=0.0,
        webhooks_retry_window_s=3600.0,
    ) as built:
        built.deliverer(sender_for(built.settings.webhooks)).run_once()  # the cursor starts
        yield built


class Org:
    def __init__(self) -> None:
        self.name = f"org-{uuid.uuid4().hex[:8]}"
        self.admin = Invoker(make_token(org=self.name, sub="ada", roles=("admin",)))
        self.writer = Invoker(make_token(org=self.name, sub="will", roles=("writer",)))
        self.reader = Invoker(make_token(org=self.name, sub="rita", roles=("reader",)))

    def register(self, url: str, events: list[str] | None = None, **kw: Any) -> dict[str, Any]:
        r = self.admin("POST", "/webhooks", {"url": url, "events": events or ALL, **kw})
        assert r.status == 201, r
        return dict(r.json())


def verify(secret: str, headers: dict[str, str], body: bytes) -> bool:
    """Standard Webhooks verification, written from the specification."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    signed = f"{headers['webhook-id']}.{headers['webhook-timestamp']}.".encode() + body
    expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    offered = [s.split(",", 1)[1] for s in headers["webhook-signature"].split(" ")]
    return any(hmac.compare_digest(expected, o) for o in offered)


def drain(container: Any, rx: Receiver, n: int) -> list[dict[str, Any]]:
    deliverer = container.deliverer(sender_for(container.settings.webhooks))
    return poll(lambda: (deliverer.run_once(), rx.events())[1], lambda e: len(e) >= n)


def test_deliveries_are_signed_ordered_and_carry_no_content(hooks: Any) -> None:
    org = Org()
    with receiver() as rx:
        hook = org.register(rx.url)
        assert hook["secret"].startswith("whsec_")
        r = org.writer("POST", "/documents", {"title": "secret plan", "body": {"x": "private"}})
        doc = r.json()
        etag = doc["etag"]
        for title in ("two", "three"):
            r = org.writer("PATCH", f"/documents/{doc['id']}", {"title": title},
                           headers={"If-Match": etag,
                                    "Content-Type": "application/merge-patch+json"})  # fmt: skip
            assert r.status == 200, r
            etag = r.json()["etag"]
        r = org.writer("DELETE", f"/documents/{doc['id']}", headers={"If-Match": etag})
        assert r.status in (200, 204), r
        events = drain(hooks, rx, 4)
        assert [e["type"] for e in events] == [
            "document.created", "document.updated", "document.updated", "document.deleted",
        ]  # fmt: skip
        assert [e["data"]["version"] for e in events] == [1, 2, 3, 4]
        assert all(e["data"] == {"org": org.name, "id": doc["id"], "version": e["data"]["version"],
                                 "seq": e["data"]["seq"]} for e in events)  # fmt: skip
        for req in rx.requests:
            assert verify(hook["secret"], req.headers, req.body)
            assert b"secret plan" not in req.body and b"private" not in req.body
            assert req.headers["webhook-id"].startswith("msg_")
        # a tampered body does not verify
        assert not verify(hook["secret"], rx.requests[0].headers, rx.requests[0].body + b" ")


def test_only_admins_manage_webhooks_and_secrets_are_shown_once(hooks: Any) -> None:
    org = Org()
    body = {"url": "https://hooks.example.com/x", "events": ["document.created"]}
    for api in (org.writer, org.reader):
        assert api("POST", "/webhooks", body).status == 403
        assert api("GET", "/webhooks").status == 403
    created = org.register("https://hooks.example.com/x", ["document.created"])
    listed = org.admin("GET", "/webhooks").json()["items"]
    assert [h["id"] for h in listed] == [created["id"]]
    assert "secret" not in listed[0] and created["secret"] not in str(listed)
    stored = admin_sql(hooks.settings.database_url, "SELECT secret_sealed FROM webhook_endpoints")
    assert created["secret"] not in str(stored)  # sealed at rest
    other = Org()
    assert other.admin("GET", "/webhooks").json()["items"] == []
    assert other.admin("DELETE", f"/webhooks/{created['id']}").status == 404
    assert org.writer("DELETE", f"/webhooks/{created['id']}").status == 403
    assert org.admin("DELETE", f"/webhooks/{created['id']}").status == 204
    assert org.admin("GET", "/webhooks").json()["items"] == []


def test_filters_by_event_and_tag(hooks: Any) -> None:
    org = Org()
    with receiver() as rx:
        org.register(rx.url, ["document.created"], tags=["billing"])
        org.writer("POST", "/documents", {"title": "a", "tags": ["other"]})
        wanted = org.writer("POST", "/documents", {"title": "b", "tags": ["billing"]}).json()
        events = drain(hooks, rx, 1)
        hooks.deliverer(sender_for(hooks.settings.webhooks)).run_once()
        assert [e["data"]["id"] for e in rx.events()] == [wanted["id"]]
        assert events[0]["type"] == "document.created"


def test_a_failing_change_holds_back_later_ones_then_dead_letters_and_replays(
    settings: Settings,
) -> None:
    with fresh_container(
        settings, webhooks_insecure_local=True, webhooks_retry_base_s=0.0,
        webhooks_retry_window_s=0.0, webhooks_disable_after_failures=1000,
    ) as built, receiver() as rx:  # fmt: skip
        deliverer = built.deliverer(sender_for(built.settings.webhooks))
        deliverer.run_once()
        org = Org()
        hook = org.register(rx.url)
        rx.statuses = [500]  # the first attempt fails: with no retry window, a dead letter
        doc = org.writer("POST", "/documents", {"title": "a"}).json()
        r = org.writer("PATCH", f"/documents/{doc['id']}", {"title": "b"},
                       headers={"If-Match": doc["etag"],
                                "Content-Type": "application/merge-patch+json"})  # fmt: skip
        assert r.status == 200
        # version 2 waited for version 1 to be dead-lettered, then went
        poll(lambda: (deliverer.run_once(), rx.events())[1], lambda e: len(e) >= 2)
        assert [e["data"]["version"] for e in rx.events()] == [1, 2]
        listed = org.admin("GET", f"/webhooks/{hook['id']}/deliveries").json()["items"]
        by_version = {d["version"]: d for d in listed}
        assert by_version[1]["status"] == "dead" and by_version[2]["status"] == "delivered"
        assert by_version[1]["history"][0]["status_code"] == 500
        dead = by_version[1]["id"]
        assert org.writer("POST", f"/webhooks/{hook['id']}/deliveries/{dead}/replay").status == 403
        r = org.admin("POST", f"/webhooks/{hook['id']}/deliveries/{dead}/replay")
        assert r.status == 202 and r.json()["status"] == "pending"
        assert org.admin("POST", f"/webhooks/{hook['id']}/deliveries/{dead}/replay").status == 409
        poll(lambda: (deliverer.run_once(), rx.events())[1], lambda e: len(e) >= 3)
        assert [e["data"]["version"] for e in rx.events()] == [1, 2, 1]
        again = org.admin("GET", f"/webhooks/{hook['id']}/deliveries").json()["items"]
        replayed = next(d for d in again if d["id"] == dead)
        assert replayed["status"] == "delivered" and replayed["attempts"] == 2
        assert len({r.headers["webhook-id"] for r in rx.requests}) == 2  # same id on replay


def test_retries_then_disables_a_failing_endpoint_with_an_audit_row(settings: Settings) -> None:
    with fresh_container(
        settings, webhooks_insecure_local=True, webhooks_retry_base_s=0.0,
        webhooks_retry_window_s=3600.0, webhooks_disable_after_failures=3,
        webhooks_disable_after_s=0.0,
    ) as built, receiver() as rx:  # fmt: skip
        deliverer = built.deliverer(sender_for(built.settings.webhooks))
        deliverer.run_once()
        org = Org()
        hook = org.register(rx.url)
        rx.statuses = [503, 503, 503, 503, 503]
        org.writer("POST", "/documents", {"title": "a"})

        def status() -> str:
            deliverer.run_once()
            return str(org.admin("GET", "/webhooks").json()["items"][0]["status"])

        assert poll(status, lambda s: s == "disabled") == "disabled"
        assert len(rx.requests) == 3  # retried (attempts 1-3), then the endpoint was disabled
        listed = org.admin("GET", "/webhooks").json()["items"][0]
        assert "3 failed attempts" in listed["disabled_reason"]
        deliverer.run_once()
        assert len(rx.requests) == 3  # a disabled endpoint gets nothing
        trail = org.admin("GET", "/audit").json()["items"]
        assert any(a["action"] == "webhook.disable" for a in trail)
        delivery = org.admin("GET", f"/webhooks/{hook['id']}/deliveries").json()["items"][0]
        assert delivery["status"] == "pending" and len(delivery["history"]) == 3


def test_rotation_signs_with_both_secrets_during_the_overlap(hooks: Any) -> None:
    org = Org()
    with receiver() as rx:
        hook = org.register(rx.url, ["document.created"])
        assert org.writer("POST", f"/webhooks/{hook['id']}/rotate-secret").status == 403
        r = org.admin("POST", f"/webhooks/{hook['id']}/rotate-secret", {"overlap_s": 600})
        assert r.status == 200, r
        rotated = r.json()
        assert rotated["secret"] != hook["secret"] and rotated["previous_secret_until"]
        org.writer("POST", "/documents", {"title": "a"})
        drain(hooks, rx, 1)
        req = rx.requests[0]
        assert len(req.headers["webhook-signature"].split(" ")) == 2
        assert verify(hook["secret"], req.headers, req.body)
        assert verify(rotated["secret"], req.headers, req.body)
        r = org.admin("POST", f"/webhooks/{hook['id']}/rotate-secret", {"overlap_s": 0})
        org.writer("POST", "/documents", {"title": "b"})
        drain(hooks, rx, 2)
        last = rx.requests[1]
        assert len(last.headers["webhook-signature"].split(" ")) == 1
        assert verify(r.json()["secret"], last.headers, last.body)
        assert not verify(rotated["secret"], last.headers, last.body)


def test_registration_refuses_unsafe_urls(container: Any) -> None:
    org = Org()
    for url in ("http://hooks.example.com/", "https://169.254.169.254/latest",
                "https://10.0.0.8/", "https://user:pw@hooks.example.com/", "ftp://x.example/",
                "https://metadata.google.internal/", "https://[::ffff:127.0.0.1]/"):  # fmt: skip
        r = org.admin("POST", "/webhooks", {"url": url, "events": ["document.created"]})
        assert r.status == 422, (url, r)
    r = org.admin("POST", "/webhooks", {"url": "https://h.example.com/", "events": ["nope"]})
    assert r.status == 422


def test_the_docs_verification_example_verifies_a_real_delivery(hooks: Any) -> None:
    """docs/webhooks.md's Python block, run as written, on a delivery as received."""
    import re
    from pathlib import Path

    text = (Path(__file__).resolve().parents[2] / "docs" / "webhooks.md").read_text()
    (block,) = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    namespace: dict[str, Any] = {}
    exec(compile(block, "docs/webhooks.md", "exec"), namespace)
    verify_webhook = namespace["verify_webhook"]
    org = Org()
    with receiver() as rx:
        hook = org.register(rx.url, ["document.created"])
        doc = org.writer("POST", "/documents", {"title": "a"}).json()
        drain(hooks, rx, 1)
        req = rx.requests[0]
        event = verify_webhook(hook["secret"], req.headers, req.body)
        assert event["type"] == "document.created" and event["data"]["id"] == doc["id"]
        with pytest.raises(ValueError, match="no valid signature"):
            verify_webhook(hook["secret"], req.headers, req.body.replace(b"created", b"deleted"))
        old = {
            **req.headers,
            "webhook-timestamp": str(int(req.headers["webhook-timestamp"]) - 3600),
        }
        with pytest.raises(ValueError, match="timestamp"):
            verify_webhook(hook["secret"], old, req.body)
