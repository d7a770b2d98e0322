"""The local stack delivers signed webhooks (docs/webhooks.md, "How it runs"): the
server's own deliverer process, woken by the outbox, POSTs each change to a local
receiver, signed and in order per document."""

from __future__ import annotations

import base64
import hashlib
import hmac
import uuid

import pytest

from tests.conftest import make_token
from tests.e2e.conftest import Client
from tests.polling import poll
from tests.webhook_receiver import receiver

pytestmark = pytest.mark.e2e


def test_the_local_stack_delivers_signed_changes_in_order(server: str) -> None:
    org = f"e2e-hooks-{uuid.uuid4().hex[:6]}"
    admin = Client(server, make_token(org=org, sub="ada", roles=("admin",)))
    writer = Client(server, make_token(org=org, sub="will", roles=("writer",)))
    with receiver() as rx:
        r = admin.request("POST", "/webhooks", {"url": rx.url, "events": ["document.created",
                                                                          "document.updated"]})  # fmt: skip
        assert r.status == 201, r.body
        secret = r.json()["secret"]
        doc = writer.request("POST", "/documents", {"title": "one"}).json()
        etag = doc["etag"]
        for title in ("two", "three"):
            r = writer.request(
                "PATCH", f"/documents/{doc['id']}", {"title": title},
                headers={"If-Match": etag, "Content-Type": "application/merge-patch+json"},
            )  # fmt: skip
            assert r.status == 200, r.body
            etag = r.json()["etag"]
        events = poll(rx.events, lambda e: len(e) >= 3, timeout_s=30)
        assert [e["data"]["version"] for e in events] == [1, 2, 3]
        key = base64.b64decode(secret.removeprefix("whsec_"))
        for req in rx.requests:
            signed = f"{req.headers['webhook-id']}.{req.headers['webhook-timestamp']}.".encode()
            mac = hmac.new(key, signed + req.body, hashlib.sha256).digest()
            assert req.headers["webhook-signature"] == "v1," + base64.b64encode(mac).decode()
        hook = admin.request("GET", "/webhooks").json()["items"][0]["id"]

        def statuses() -> list[str]:
            items = admin.request("GET", f"/webhooks/{hook}/deliveries").json()["items"]
            return sorted(d["status"] for d in items)

        # recorded after the receiver answered: a moment later
        assert poll(statuses, lambda s: s == ["delivered"] * 3) == ["delivered"] * 3
