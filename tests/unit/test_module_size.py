"""No module of the service or its tools grows past 500 lines (CONTRIBUTING.md):
a module that would is split by concern, as config.py (settings_groups.py) was."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LIMIT = 500


def test_no_module_is_longer_than_the_limit() -> None:
    sources = [ROOT / "app.py"]
    for package in ("chalicelib", "functions", "devtools"):
        sources += sorted((ROOT / package).rglob("*.py"))
    assert len(sources) > 100  # the scan finds the code
    too_long = {
        str(path.relative_to(ROOT)): n
        for path in sources
        if (n := len(path.read_text().splitlines())) > LIMIT
    }
    assert not too_long, f"modules over {LIMIT} lines (split them by concern): {too_long}"
