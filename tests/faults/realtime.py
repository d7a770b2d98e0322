"""The real-time fan-out killed mid-load, with a WebSocket subscriber watching.

``Subscriber`` is a client as an application would write one (docs/realtime.md):
it reads the org's changes feed to the end, subscribes to the whole org with
``since`` = the feed's cursor, keeps the ``seq`` of the changes it receives,
and when its connection drops it reconnects and subscribes again with
``since`` = that cursor (reading the feed on when the catch-up says ``more``).
Versions it has already seen are duplicates and dropped.  ``Campaign.verify``
then checks it saw the final version of every document acknowledged in its
org, and that the fan-out's cursor reached the outbox head.
"""

from __future__ import annotations

import json
import os
import signal
import threading
from collections import Counter
from typing import Any

from websockets.exceptions import WebSocketException
from websockets.sync.client import connect

from tests.conftest import make_token
from tests.e2e.conftest import Client
from tests.faults.load import MixedLoad
from tests.faults.processes import PROGRESS, _grows
from tests.faults.registry import Notes, fault
from tests.faults.stack import Campaign
from tests.polling import poll


class Subscriber:
    def __init__(self, base: str, org: str) -> None:
        self.org = org
        self.token = make_token(org=org, sub="faults-watcher", roles=("reader",))
        self.feed = Client(base, self.token)
        self.url = base.replace("http://", "ws://", 1) + "/realtime"
        self.seen: dict[str, int] = {}  # document -> highest version seen
        self.counts: Counter[str] = Counter()  # connections, frames, duplicates, refused
        self.cursor = ""
        self.errors: list[BaseException] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="subscriber")

    # -- what it saw ----------------------------------------------------------------
    def _saw(self, doc: str, version: int) -> None:
        with self._lock:
            if self.seen.get(doc, 0) >= version:
                self.counts["duplicates"] += 1
            else:
                self.seen[doc] = version

    def missing(self, final: dict[str, int]) -> dict[str, tuple[int | None, int]]:
        """Documents whose final version it has not seen: doc -> (seen, final)."""
        if self.errors:
            raise self.errors[0]
        with self._lock:
            return {d: (self.seen.get(d), v) for d, v in final.items() if self.seen.get(d, 0) < v}

    # -- the client ------------------------------------------------------------------
    def _read_feed(self, since: str | None) -> str:
        """Page the feed from ``since`` to its end; the cursor after the last page."""
        while True:
            query = f"?limit=1000&since={since}" if since else "?limit=1000"
            r = self.feed.request("GET", "/changes" + query)
            assert r.status == 200, (r.status, r.body[:300])
            page: dict[str, Any] = r.json()
            for change in page["changes"]:
                self._saw(change["id"], change["version"])
            since = page["next"]
            if not page["changes"]:
                return since

    def start(self) -> Subscriber:
        self.cursor = self._read_feed(None)
        self._thread.start()
        return self

    def close(self) -> None:
        self._stop.set()
        self._thread.join(10)

    def _run(self) -> None:
        while not self._stop.is_set():
            connections = self.counts["connections"]
            try:
                self._connection()
            except (OSError, WebSocketException):  # dropped, or refused while the hub restarts
                self.counts["drops" if self.counts["connections"] > connections else "refused"] += 1
                self._stop.wait(0.1)
            except BaseException as exc:  # surfaced by missing()
                self.errors.append(exc)
                return

    def _connection(self) -> None:
        protocols: Any = ["docs.v1", f"bearer.{self.token}"]
        with connect(self.url, subprotocols=protocols, open_timeout=10, close_timeout=1) as ws:
            self.counts["connections"] += 1
            ws.send(json.dumps({"action": "subscribe", "org": True, "since": self.cursor}))
            acked = False  # until the ack, the cursor stays: catch-up and live frames mix
            while not self._stop.is_set():
                try:
                    frame: dict[str, Any] = json.loads(ws.recv(timeout=0.2))
                except TimeoutError:
                    continue
                if frame["type"] == "change":
                    self.counts["frames"] += 1
                    self._saw(frame["id"], frame["version"])
                    if acked:
                        self.cursor = frame["seq"]
                elif frame["type"] == "subscribed":
                    acked = True
                    self.counts["acked"] += 1
                    self.cursor = self._read_feed(frame["next"]) if frame["more"] else frame["next"]
                elif frame["type"] == "error":
                    raise AssertionError(f"the subscription failed: {frame}")


@fault(
    "realtime: kill -9 the fan-out",
    "SIGKILL the real-time process mid-load (a subscriber on the org); it is restarted",
)
def realtime_killed(campaign: Campaign, load: MixedLoad) -> Notes:
    watcher = Subscriber(campaign.server.base, campaign.orgs[-1]).start()
    campaign.watchers.append(watcher)  # verify checks what it saw, then closes it
    assert poll(lambda: watcher.counts["frames"] >= 5, timeout_s=30), "changes arrive live"
    before = watcher.counts["frames"]
    hubs = campaign.realtime_hubs()
    assert hubs, "the real-time process listens on the outbox"
    for pid in hubs:
        os.kill(pid, signal.SIGKILL)
    assert _grows(load, acked=PROGRESS // 2), "writes go on while real-time is down"
    assert poll(lambda: set(campaign.realtime_hubs()) - set(hubs), timeout_s=30), (
        "the server started its real-time process again"
    )
    assert poll(lambda: watcher.counts["acked"] >= 2, timeout_s=30), (
        "the subscriber reconnected and resumed"
    )
    return {
        "frames before kill": before,
        "reconnects": watcher.counts["connections"] - 1,
        "refused": watcher.counts["refused"],
        "duplicates": watcher.counts["duplicates"],
    }
