"""The webhook deliverer as a local loop (functions/deliver_webhooks.py in AWS):
woken by the same ``NOTIFY docs_outbox`` as the search sync (when writes
notify: ``DOCS_SEARCH_NUDGE=notify``), and every ``poll_s`` for retries that
came due.  It LISTENs on a connection of its own and does not register as a
search consumer (it writes to no index).  PostgreSQL away: it backs off and
tries again; nothing is lost (the cursor and the deliveries wait).

Never imported by Lambda code paths.
"""

from __future__ import annotations

import signal
import threading
from typing import TYPE_CHECKING, Any

from devtools import consumer_loop
from devtools.logline import log_line

if TYPE_CHECKING:
    from chalicelib.adapters.postgres.outbox_listener import CommitListener

CHANNEL = "docs_outbox"
# at most one pass this often (outbox_listener.Pace): under load a pass takes a batch
# of commits; a delivery starts at most this much later (in AWS, up to a minute)
PACE_S = 0.1
LISTENER_APP = "docs-webhooks"  # + " <pid>": the fault campaign finds the process by it


def _listen(container: Any) -> CommitListener:
    """A LISTEN connection that does not register as a search consumer."""
    import os

    from chalicelib.adapters.postgres.outbox_listener import CommitListener, listening_connection

    name = f"{LISTENER_APP} {os.getpid()}"
    return CommitListener(listening_connection(container.uow, CHANNEL, name))


def run(stop: threading.Event | None = None, *, poll_s: float = 1.0) -> None:
    """Run until ``stop`` is set (or SIGTERM/SIGINT when run as a process)."""
    from chalicelib import bootstrap
    from chalicelib.adapters.webhook_http import sender_for

    stop = stop or threading.Event()
    container = bootstrap.container()
    deliverer = container.deliverer(sender_for(container.settings.webhooks))

    def one_pass() -> None:
        report = deliverer.run_once()
        if report.busy:
            log_line("webhooks", **report.as_dict())

    log_line("webhook deliverer started", insecure_local=container.settings.webhooks.insecure_local)
    try:
        # woken by a commit that wrote the outbox, or the poll (retries come due by the clock)
        consumer_loop.run(
            stop, name="webhook deliverer", listen=lambda: _listen(container),
            one_pass=one_pass, pace_s=PACE_S, poll_s=poll_s,
        )  # fmt: skip
    finally:
        container.close()


def main() -> None:
    """Entry point of the local server's webhook process."""
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    run(stop)
