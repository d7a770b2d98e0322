"""Figures a test puts in the terminal summary, under xdist too.

A test adds lines with ``summary_line(request, section, line)`` (a header
with ``header=True``, printed once); they travel with its report (its
``user_properties``), so the controller of an xdist run sees them, and the
root conftest prints them after the run, section by section (CI output
included, no ``-s`` needed).
"""

from __future__ import annotations

from typing import Any

LINE = "summary:"
HEADER = "summary-header:"
_SECTIONS: dict[str, tuple[list[str], list[str]]] = {}  # section -> (headers, lines)


def summary_line(request: Any, section: str, line: str, *, header: bool = False) -> None:
    request.node.user_properties.append(((HEADER if header else LINE) + section, line))


def collect(report: Any) -> None:
    """``pytest_runtest_logreport``: keep the summary lines of a finished call."""
    if report.when != "call":
        return
    for name, value in report.user_properties:
        for prefix, slot in ((HEADER, 0), (LINE, 1)):
            if str(name).startswith(prefix):
                lines = _SECTIONS.setdefault(str(name)[len(prefix) :], ([], []))[slot]
                if slot == 1 or value not in lines:
                    lines.append(str(value))


def write(terminalreporter: Any) -> None:
    """``pytest_terminal_summary``: every section, its headers once, then its lines."""
    for section, (headers, lines) in _SECTIONS.items():
        terminalreporter.section(section)
        for line in [*headers, *lines]:
            terminalreporter.write_line(line)
