"""The restore drill's figures, printed in the terminal summary of every run that ran it."""

from __future__ import annotations

from typing import Any

FIGURES: dict[str, Any] = {}  # filled by test_restore.py


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not FIGURES:
        return
    tr = terminalreporter
    tr.section("restore drill: point-in-time restore into a fresh instance")
    for key, value in FIGURES.items():
        tr.write_line(f"{key:<34} {value}")
