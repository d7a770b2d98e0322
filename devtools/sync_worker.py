"""The search sync as a local loop: woken by PostgreSQL LISTEN/NOTIFY, with a
poll fallback, running the same ``SearchSync`` the Lambda handlers run.

Writes made with ``DOCS_SEARCH_NUDGE=notify`` NOTIFY ``docs_outbox`` at commit
(a trigger on the outbox, see migration 0004); the loop drains the outbox,
then waits for the next notification or ``poll_s``, whichever comes first
(a notification lost while the loop was reconnecting is caught by the poll).
Under load it makes at most one pass every ``PACE_S``, each taking every commit
announced before it, instead of one pass per commit.
When OpenSearch or PostgreSQL is down it backs off (exponential, capped) and
tries again; nothing is lost, the outbox rows wait.

The loop is also the local audit chainer (docs/adr/0011-audit-chain-off-the-write-path.md):
each pass links every org's pending audit rows, as the sweep and the nudges do
in AWS, so a write's audit row is chained within a notification (or ``poll_s``
for audit rows written without an outbox row).

The loop registers itself on the outbox while it runs (the listener connection,
``chalicelib.adapters.postgres.outbox_listener.listen``).  A consumer that would write to
another index (another OpenSearch, or another alias) than one already
registered on the same database stops at once with ``ConsumerConflict``: two
such consumers would split the documents between two indexes.  Consumers of
the same index may run side by side (claims never overlap).

Never imported by Lambda code paths.
"""

from __future__ import annotations

import hashlib
import logging
import os
import signal
import threading
import time
from typing import Any
from urllib.parse import urlsplit

from chalicelib.adapters.postgres.outbox_listener import Consumer, OutboxListener, Pace, listen
from chalicelib.config import Settings
from chalicelib.domain.errors import DomainError
from devtools.logline import log_line

log = logging.getLogger("docs.sync")
CHANNEL = "docs_outbox"
PURGE_INTERVAL_S = 3600.0  # the scheduled purge's rate in AWS (functions/purge.py)
STOP_CHECK_S = 0.2  # how soon a stop is seen while waiting for the outbox
# at most one pass this often: under load a pass takes a batch of commits, not one
# (outbox_listener.Pace); the search lag grows by at most this much
PACE_S = 0.05


class ConsumerConflict(SystemExit):
    """Another consumer of this outbox writes to a different index: stop, saying so."""


def consumer(settings: Settings) -> Consumer:
    """This process as a consumer: where it writes (OpenSearch endpoint and alias)."""
    parts = urlsplit(settings.opensearch_url or "")
    endpoint = f"{parts.scheme}://{parts.hostname}:{parts.port or ''}{parts.path.rstrip('/')}"
    key = hashlib.sha256(f"{endpoint}|{settings.search_alias}".encode()).hexdigest()[:12]
    where = f"{parts.hostname}:{parts.port}" if parts.port else str(parts.hostname)
    return Consumer(os.getpid(), key, f"alias {settings.search_alias} at {where}")


def register(container: Any) -> OutboxListener:
    """This consumer's listener, once no consumer writing elsewhere is registered."""
    settings = container.settings
    me = consumer(settings)
    listener = listen(container.outbox.uow, CHANNEL, me)
    clash = [other for other in listener.others() if other.key != me.key]
    if clash:
        listener.close()
        other = clash[0]
        database = urlsplit(settings.runtime_database_url).path.lstrip("/") or "its database"
        raise ConsumerConflict(
            f"another search sync (pid {other.pid}, {other.target}) already consumes the "
            f"outbox of database {database}; this one ({me.target}) would split the "
            "documents between two indexes. Stop the other one (./scripts/serve.sh --stop "
            "for a local server), or give this one its own database (DATABASE_URL)."
        )
    return listener


def check(container: Any) -> None:
    """Raise ConsumerConflict now if this process's consumer could not register."""
    register(container).close()


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
    listener: OutboxListener | None = None
    last_housekeeping = 0.0
    last_purge = 0.0
    pace = Pace(PACE_S, sleep=stop.wait)
    log_line("search sync started", alias=container.settings.search_alias)
    while not stop.is_set():
        try:
            if listener is None or listener.closed:
                listener = register(container)
            pace.before_pass()
            listener.take_pending()  # commits this pass will see: no pass of their own
            chained = container.audit_chainer.chain()
            if chained:
                log_line("audit chained", rows=chained)
            report = sync.drain()
            if report.rows:
                log_line("search sync", **report.as_dict())
            _notify(container)
            if time.monotonic() - last_housekeeping > 60:
                _housekeeping(sync)
                last_housekeeping = time.monotonic()
            if time.monotonic() - last_purge > PURGE_INTERVAL_S:
                last_purge = time.monotonic()  # the hourly purge, as in AWS
                purged = container.purge.run()
                if purged.purged or purged.failed:
                    log_line("purge", **purged.as_dict())
            backoff = 0.0
            _wait(listener, stop, poll_s)  # a commit that wrote the outbox, or the poll interval
        except Exception as exc:  # the loop outlives any one failure, like a retried Lambda
            backoff = min(max_backoff_s, max(0.5, backoff * 2))
            expected = isinstance(exc, (DomainError, psycopg.Error))
            log_line(
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


def _housekeeping(sync: Any) -> None:
    """Once a minute: drop retired indexes past their grace, prune synced outbox rows."""
    dropped = sync.drop_expired()
    if dropped:
        log_line("dropped retired indexes", indexes=dropped)
    pruned = sync.prune()
    if pruned:
        log_line("pruned outbox rows", rows=pruned)


def _notify(container: Any) -> None:
    """Share notifications after the same wake-up (functions/notify.py in AWS); their
    own cursor, so a failure here delays neither the search sync nor the next run."""
    notifier = container.share_notifier
    if not notifier.enabled:
        return
    try:
        report = notifier.drain(budget_s=5.0)
    except Exception as exc:  # the next wake-up retries from the same cursor
        log_line("share notifications waiting", reason=f"{type(exc).__name__}: {str(exc)[:300]}")
        return
    if report.events or report.failed:
        log_line("share notifications", **report.__dict__)


def _wait(listener: OutboxListener, stop: threading.Event, poll_s: float) -> None:
    """Until a notification, ``poll_s``, or ``stop``: the wait is cut in slices, because
    a signal does not interrupt it and a server that stops waits for this process."""
    deadline = time.monotonic() + poll_s
    while not stop.is_set():
        left = deadline - time.monotonic()
        if left <= 0 or listener.wait(min(STOP_CHECK_S, left)):
            return


def main() -> None:
    """Entry point of the local server's sync process."""
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    run(stop)
