"""The webhook deliverer killed mid-load, with a receiver watching (docs/webhooks.md).

An admin of the fault's org registers an endpoint on a local receiver (the
local stack allows http and loopback); the deliverer process is SIGKILLed while
the load writes, and the server's supervisor starts it again.  ``Campaign.verify``
then checks, through ``WebhookWatcher.missing``, that the receiver got the final
version of every document changed after the endpoint was live (nothing
acknowledged lost) and that no document's versions ever arrived out of order
(a redelivery of the same version, at least once, is allowed).
"""

from __future__ import annotations

import os
import signal
import threading
from contextlib import ExitStack

from tests.conftest import make_token
from tests.e2e.conftest import Client
from tests.faults.load import MixedLoad
from tests.faults.processes import PROGRESS, _grows
from tests.faults.registry import Notes, fault
from tests.faults.stack import Campaign
from tests.polling import poll
from tests.webhook_receiver import receiver

EVENTS = ["document.created", "document.updated", "document.deleted", "document.restored"]


class WebhookWatcher:
    def __init__(self, campaign: Campaign, org: str) -> None:
        self.org = org
        self._stack = ExitStack()
        self.rx = self._stack.enter_context(receiver())
        self.admin = Client(campaign.server.base, make_token(org=org, sub="ada", roles=("admin",)))
        self.since: dict[str, int] = {}  # document -> version acknowledged when the hook was live
        self._lock = threading.Lock()

    def register(self, load: MixedLoad) -> None:
        r = self.admin.request("POST", "/webhooks", {"url": self.rx.url, "events": EVENTS})
        assert r.status == 201, r.body
        after = len(load.acked_at)  # then some writes: the endpoint is live by then
        assert poll(lambda: len(load.acked_at) >= after + 20, timeout_s=30), "the load goes on"
        self.since = {doc: ack.version for doc, ack in list(load.acks.items())}

    def received(self) -> dict[str, list[int]]:
        """Versions per document, in the order they arrived."""
        out: dict[str, list[int]] = {}
        for event in self.rx.events():
            out.setdefault(event["data"]["id"], []).append(int(event["data"]["version"]))
        return out

    def reordered(self) -> dict[str, list[int]]:
        return {d: v for d, v in self.received().items() if v != sorted(v)}

    def missing(self, final: dict[str, int]) -> dict[str, tuple[int | None, int]]:
        """Documents changed after the hook was live whose final version has not arrived."""
        assert not self.reordered(), f"versions arrived out of order: {self.reordered()}"
        got = {d: max(v) for d, v in self.received().items()}
        return {d: (got.get(d), v) for d, v in final.items()
                if v > self.since.get(d, 0) and got.get(d, 0) < v}  # fmt: skip

    def close(self) -> None:
        self._stack.close()


def deliverers(campaign: Campaign) -> list[int]:
    """Pids of the local server's webhook deliverer processes (their LISTEN connections)."""
    from devtools.webhook_worker import LISTENER_APP

    with campaign.admin() as conn:
        rows = conn.execute(
            "SELECT application_name FROM pg_stat_activity WHERE application_name LIKE %s",
            (f"{LISTENER_APP} %",),
        ).fetchall()
    return sorted({int(r["application_name"].split(" ")[1]) for r in rows})


@fault(
    "webhooks: kill -9 the deliverer",
    "SIGKILL the webhook deliverer mid-load (an endpoint on the org); it is restarted",
)
def webhooks_killed(campaign: Campaign, load: MixedLoad) -> Notes:
    watcher = WebhookWatcher(campaign, campaign.orgs[-1])  # the fault's org
    campaign.watchers.append(watcher)  # verify checks what it received, then closes it
    watcher.register(load)
    assert poll(lambda: len(watcher.rx.requests) >= 5, timeout_s=30), "deliveries arrive"
    before = len(watcher.rx.requests)
    pids = deliverers(campaign)
    assert pids, "the webhook deliverer listens on the outbox"
    for pid in pids:
        os.kill(pid, signal.SIGKILL)
    assert _grows(load, acked=PROGRESS // 2), "writes go on while the deliverer is down"
    assert poll(lambda: set(deliverers(campaign)) - set(pids), timeout_s=30), (
        "the server started its deliverer again"
    )
    assert poll(lambda: len(watcher.rx.requests) > before + 5, timeout_s=30), "deliveries resume"
    return {"delivered before kill": before, "documents watched": len(watcher.since)}
