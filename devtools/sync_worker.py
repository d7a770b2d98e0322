"""The search sync as a local loop: woken by PostgreSQL LISTEN/NOTIFY, with a
poll fallback, running the same ``SearchSync`` the Lambda handlers run.

Writes made with ``DOCS_SEARCH_NUDGE=notify`` NOTIFY ``docs_outbox`` at commit
(a trigger on the outbox, see migration 0004); the loop drains the outbox,
then waits for the next notification or ``poll_s``, whichever comes first
(a notification lost while the loop was reconnecting is caught by the poll).
When OpenSearch or PostgreSQL is down it backs off (exponential, capped) and
tries again; nothing is lost, the outbox rows wait.

Never imported by Lambda code paths.
"""

from __future__ import annotations

import json
import logging
import signal
import sys
import threading
import time
from typing import Any

from chalicelib.domain.errors import DomainError

log = logging.getLogger("docs.sync")
CHANNEL = "docs_outbox"


def _say(msg: str, **fields: Any) -> None:
    line = {"ts": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "level": "INFO"}
    sys.stdout.write(json.dumps({**line, "msg": msg, **fields}) + "\n")
    sys.stdout.flush()


def run(
    stop: threading.Event | None = None, *, poll_s: float = 2.0, max_backoff_s: float = 10.0
) -> None:
    """Run until ``stop`` is set (or SIGTERM/SIGINT when run as a process)."""
    import psycopg

    from chalicelib import bootstrap

    stop = stop or threading.Event()
    container = bootstrap.container()
    sync = container.search_sync
    backoff = 0.0
    listener: psycopg.Connection[Any] | None = None
    last_housekeeping = 0.0
    _say("search sync started", alias=container.settings.search_alias)
    while not stop.is_set():
        try:
            if listener is None or listener.closed:
                listener = psycopg.connect(container.settings.runtime_database_url, autocommit=True)
                listener.execute(f"LISTEN {CHANNEL}")
            report = sync.drain()
            if report.rows:
                _say("search sync", **report.as_dict())
            if time.monotonic() - last_housekeeping > 60:
                dropped = sync.drop_expired()
                if dropped:
                    _say("dropped retired indexes", indexes=dropped)
                pruned = sync.prune()
                if pruned:
                    _say("pruned outbox rows", rows=pruned)
                last_housekeeping = time.monotonic()
            backoff = 0.0
            # wait for a commit that wrote the outbox (or the poll interval)
            for _ in listener.notifies(timeout=poll_s, stop_after=1):
                pass
        except Exception as exc:  # the loop outlives any one failure, like a retried Lambda
            backoff = min(max_backoff_s, max(0.5, backoff * 2))
            expected = isinstance(exc, (DomainError, psycopg.Error))
            _say(
                "search sync waiting" if expected else "search sync error",
                reason=f"{type(exc).__name__}: {str(exc)[:300]}",
                retry_in_s=backoff,
            )
            if listener is not None:
                listener.close()
                listener = None
            stop.wait(backoff)
    if listener is not None:
        listener.close()
    container.close()


def main() -> None:
    """Entry point of the local server's sync process."""
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    run(stop)
