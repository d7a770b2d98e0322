"""The campaign's stack (one per run, shared by every fault) and its summary table."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.faults.registry import RESULTS
from tests.faults.stack import Campaign


@pytest.fixture(scope="session")
def campaign() -> Iterator[Campaign]:
    running = Campaign.start()
    yield running
    running.stop()


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """The table of faults survived, in the output of every run that ran one (CI too)."""
    if not RESULTS:
        return
    tr = terminalreporter
    tr.section("fault campaign: faults survived")
    header = f"{'fault':<38} {'s':>5} {'ops':>5} {'acked':>5}  {'statuses':<30} notes"
    tr.write_line(header)
    tr.write_line("-" * len(header))
    for r in RESULTS:
        notes = ", ".join(f"{k} {v}" for k, v in r.notes.items())
        tr.write_line(
            f"{r.fault.name:<38} {r.seconds:>5} {r.ops:>5} {r.acked:>5}  {r.statuses:<30} {notes}"
        )
    last = RESULTS[-1].checked
    tr.write_line(
        f"after each: every acknowledged write present, PostgreSQL = cache = index "
        f"(version of every document), outbox drained, no search dead letters, real-time "
        f"cursor at the outbox head, subscribers saw every final version "
        f"(last check: {last.get('docs', 0)} documents, {last.get('acked', 0)} acknowledged)"
    )
