"""devtools/supervise.py: a killed child is started again; SIGTERM ends both."""

from __future__ import annotations

import multiprocessing
import os
import signal
import time
from pathlib import Path

from devtools.supervise import supervise
from tests.polling import poll


def _child(runs: Path) -> None:
    with runs.open("a") as f:
        f.write(f"{os.getpid()}\n")
    time.sleep(60)  # until killed (by the test, or by the supervisor's SIGTERM)


def _started(runs: Path) -> list[int]:
    return [int(p) for p in runs.read_text().split()] if runs.exists() else []


def test_a_killed_child_is_restarted_and_sigterm_stops_both(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    ctx = multiprocessing.get_context("fork")
    supervisor = ctx.Process(target=supervise, args=(lambda: _child(runs), "test"), daemon=True)
    supervisor.start()
    try:
        assert poll(lambda: len(_started(runs)) >= 1, timeout_s=10)
        first = _started(runs)[0]
        os.kill(first, signal.SIGKILL)
        assert poll(lambda: len(_started(runs)) >= 2, timeout_s=10), "started again"
        second = _started(runs)[1]
        assert second != first
        os.kill(supervisor.pid or 0, signal.SIGTERM)
        supervisor.join(10)
        assert supervisor.exitcode == 0
        assert poll(lambda: not _alive(second), timeout_s=5), "the child was stopped too"
        assert len(_started(runs)) == 2, "and not started again"
    finally:
        if supervisor.is_alive():
            supervisor.kill()


def _alive(pid: int) -> bool:
    try:  # a zombie (exited, not reaped yet) counts as stopped
        state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"
