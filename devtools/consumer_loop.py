"""The loop of a local outbox consumer process (the search sync, the webhook
deliverer): open its listener, make a pass, wait for the next commit or the poll,
and outlive any one failure, as a retried Lambda would.

A pass takes every notification already received first (its commits are visible
to it) and is paced: at most one every ``pace_s`` (``outbox_listener.Pace``).  A
failure closes the listener (a fresh one next time) and backs off, doubling from
0.5 s to ``max_backoff_s``; nothing is lost, the outbox rows and cursors wait.
The wait is cut in slices, because a signal does not interrupt it and a server
that stops waits for this process.

Never imported by Lambda code paths.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from chalicelib.adapters.postgres.outbox_listener import CommitListener, Pace
from devtools.logline import log_line

STOP_CHECK_S = 0.2  # how soon a stop is seen while waiting for the outbox


def run(
    stop: threading.Event,
    *,
    name: str,
    listen: Callable[[], CommitListener],
    one_pass: Callable[[], None],
    pace_s: float,
    poll_s: float,
    max_backoff_s: float = 10.0,
    expected: tuple[type[BaseException], ...] = (Exception,),
) -> None:
    """Until ``stop`` is set.  Failures of the ``expected`` kinds log ``<name>
    waiting``, any other ``<name> error``."""
    pace = Pace(pace_s, sleep=stop.wait)
    listener: CommitListener | None = None
    backoff = 0.0
    while not stop.is_set():
        try:
            if listener is None or listener.closed:
                listener = listen()
            pace.before_pass()
            listener.take_pending()  # commits this pass will see: no pass of their own
            one_pass()
            backoff = 0.0
            _wait(listener, stop, poll_s)  # a commit that wrote the outbox, or the poll
        except Exception as exc:
            backoff = min(max_backoff_s, max(0.5, backoff * 2))
            log_line(
                f"{name} waiting" if isinstance(exc, expected) else f"{name} error",
                reason=f"{type(exc).__name__}: {str(exc)[:300]}",
                retry_in_s=backoff,
            )
            if listener is not None:
                listener.close()
                listener = None
            stop.wait(backoff)
    if listener is not None:
        listener.close()


def _wait(listener: CommitListener, stop: threading.Event, poll_s: float) -> None:
    deadline = time.monotonic() + poll_s
    while not stop.is_set():
        left = deadline - time.monotonic()
        if left <= 0 or listener.wait(min(STOP_CHECK_S, left)):
            return
