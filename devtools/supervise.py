"""Keep one of the local server's long-running processes alive: restart it when it dies.

In AWS a crashed real-time fan-out costs a retry: API Gateway keeps the
WebSocket connections and the next invocation picks the cursor up.  Locally
the real-time process owns the connections *and* the fan-out, so a crash of
it would leave ``/realtime`` answering 503 until the whole server restarts.
Supervised, the crash costs locally what it costs clients anywhere: they
reconnect and resume from their last ``seq`` (docs/realtime.md).

The supervisor is itself a small single-threaded process (forked by the
server at startup, before the workers), so the child is forked from a
process without threads: never from the server's parent, whose other threads
could hold a lock across the fork.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import time
import traceback
from collections.abc import Callable
from typing import Any

from devtools.logline import log_line

RAN_LONG_S = 30.0  # a child that ran this long was not crash-looping: backoff starts over


def _say(msg: str, **fields: Any) -> None:
    log_line(msg, level="WARNING", **fields)


def _run_child(target: Callable[[], None]) -> None:
    """In the forked child: run ``target``, never return into the supervisor's loop."""
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    code = 1
    try:
        target()
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    except BaseException:
        traceback.print_exc()
    finally:
        with contextlib.suppress(Exception):
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(code)


def supervise(
    target: Callable[[], None], name: str, *, backoff_s: float = 0.2, max_backoff_s: float = 5.0
) -> None:
    """Run ``target`` in a child process until SIGTERM/SIGINT, restarting it whenever
    it exits (a crash, a kill -9), with exponential backoff while it keeps dying.
    A signal to the supervisor is passed on to the child, whose exit then ends it."""
    child = 0
    stopping = False

    def stop(signum: int, _frame: Any) -> None:
        nonlocal stopping
        stopping = True
        if child:
            with contextlib.suppress(ProcessLookupError):
                os.kill(child, signum)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    delay = backoff_s
    while not stopping:
        started = time.monotonic()
        child = os.fork()
        if child == 0:
            _run_child(target)
        if stopping:  # the signal came while forking: the handler saw no child yet
            with contextlib.suppress(ProcessLookupError):
                os.kill(child, signal.SIGTERM)
        _, status = os.waitpid(child, 0)
        pid, child = child, 0
        if stopping:
            return
        if time.monotonic() - started >= RAN_LONG_S:
            delay = backoff_s
        _say(
            f"{name} process exited; restarting it",
            pid=pid, exit=os.waitstatus_to_exitcode(status), restart_in_s=delay,
        )  # fmt: skip
        time.sleep(delay)
        delay = min(delay * 2, max_backoff_s)
