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
from typing import Any

from devtools.logline import log_line

CHANNEL = "docs_outbox"
# at most one pass this often (outbox_listener.Pace): under load a pass takes a batch
# of commits; a delivery starts at most this much later (in AWS, up to a minute)
PACE_S = 0.1
LISTENER_APP = "docs-webhooks"  # + " <pid>": the fault campaign finds the process by it


def _listen(container: Any) -> Any:
    """A LISTEN connection that does not register as a search consumer."""
    import os

    from chalicelib.adapters.postgres.outbox_listener import listening_connection

    return listening_connection(container.uow, CHANNEL, f"{LISTENER_APP} {os.getpid()}")


def run(stop: threading.Event | None = None, *, poll_s: float = 1.0) -> None:
    """Run until ``stop`` is set (or SIGTERM/SIGINT when run as a process)."""
    from chalicelib import bootstrap
    from chalicelib.adapters.postgres.outbox_listener import Pace, take_pending, wait_for_commit
    from chalicelib.adapters.webhook_http import sender_for

    stop = stop or threading.Event()
    container = bootstrap.container()
    deliverer = container.deliverer(sender_for(container.settings.webhooks))
    listener: Any = None
    backoff = 0.0
    pace = Pace(PACE_S, sleep=stop.wait)
    log_line("webhook deliverer started", insecure_local=container.settings.webhooks.insecure_local)
    while not stop.is_set():
        try:
            if listener is None or listener.closed:
                listener = _listen(container)
            pace.before_pass()
            take_pending(listener)  # commits this pass will see: no pass of their own
            report = deliverer.run_once()
            if report.busy:
                log_line("webhooks", **report.as_dict())
            backoff = 0.0
            # a commit that wrote the outbox, or the poll (retries come due by the clock)
            wait_for_commit(listener, poll_s)
        except Exception as exc:  # the loop outlives any one failure, like a retried Lambda
            backoff = min(10.0, max(0.5, backoff * 2))
            log_line("webhook deliverer waiting", reason=f"{type(exc).__name__}: {str(exc)[:300]}")
            if listener is not None:
                listener.close()
                listener = None
            stop.wait(backoff)
    if listener is not None:
        listener.close()
    container.close()


def main() -> None:
    """Entry point of the local server's webhook process."""
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    run(stop)
