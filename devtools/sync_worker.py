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

from chalicelib.adapters.postgres.outbox_listener import Consumer, OutboxListener, listen
from chalicelib.config import Settings
from chalicelib.domain.errors import DomainError
from devtools import consumer_loop
from devtools.logline import log_line

log = logging.getLogger("docs.sync")
CHANNEL = "docs_outbox"
PURGE_INTERVAL_S = 3600.0  # the scheduled purge's rate in AWS (functions/purge.py)
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
    last = {"housekeeping": 0.0, "purge": 0.0}

    def one_pass() -> None:
        chained = container.audit_chainer.chain()
        if chained:
            log_line("audit chained", rows=chained)
        report = sync.drain()
        if report.rows:
            log_line("search sync", **report.as_dict())
        _notify(container)
        if time.monotonic() - last["housekeeping"] > 60:
            _housekeeping(sync)
            last["housekeeping"] = time.monotonic()
        if time.monotonic() - last["purge"] > PURGE_INTERVAL_S:
            last["purge"] = time.monotonic()  # the hourly purge, as in AWS
            purged = container.purge.run()
            if purged.purged or purged.failed:
                log_line("purge", **purged.as_dict())

    log_line("search sync started", alias=container.settings.search_alias)
    try:
        consumer_loop.run(
            stop, name="search sync", listen=lambda: register(container), one_pass=one_pass,
            pace_s=PACE_S, poll_s=poll_s, max_backoff_s=max_backoff_s,
            expected=(DomainError, psycopg.Error),
        )  # fmt: skip
    finally:
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


def main() -> None:
    """Entry point of the local server's sync process."""
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    run(stop)
