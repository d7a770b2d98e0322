"""The benchmark command's writer and chart on tiny synthetic numbers (no timing)."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks.report import Figure, Results, render_markdown, write_chart, write_markdown
from benchmarks.run import _flatten


def _results() -> Results:
    res = Results(meta={"date": "2026-01-01T00:00:00+00:00", "mode": "test"})
    res.add(
        [
            Figure("handlers", "GET miss", 0.9, "ms", "PG select + redis SET", 0.3,
                   p99=2.0, baseline_p99=1.0, target=2.0),
            Figure("handlers", "GET hit", 0.2, "ms", "redis GET", 0.1, p99=0.5,
                   baseline_p99=0.3, target=3.0),
            Figure("http", "read by id, 8 conn.", 900.0, "req/s", "peer", 300.0,
                   stat="mean", target=3.0, higher_is_better=True),
            Figure("import", "import app", 0.0, "ms", "its dependency set", 0.0, target=1.3),
        ]
    )  # fmt: skip
    res.series["sync_lag_ms"] = [[0.0, 2.0], [0.5, 3.5], [1.0, 250.0]]
    res.sections = {
        "handlers": {"status": "ok", "seconds": 1.0},
        "realtime": {"status": "skipped", "detail": "not in this checkout"},
    }
    res.extras["handlers"] = [["note", "synthetic"]]
    return res


def test_ratio_and_verdict_follow_the_direction_of_the_target() -> None:
    miss, hit, http, empty = _results().figures
    assert miss.ratio == pytest.approx(3.0)
    assert miss.met is False  # 3x against <= 2x
    assert hit.met is True
    assert http.met is True  # 3x against >= 3x, higher is better
    assert empty.ratio == 1.0  # 0 / 0 is no difference, not a crash
    assert Figure("x", "n", 1.0, "ms", "b", 1.0).met is None  # no target, no verdict


def test_markdown_lists_targets_sections_and_skips() -> None:
    text = render_markdown(_results(), chart_name="results.png")
    assert "## Targets" in text
    assert "| GET miss (p50) | 0.900 ms | PG select + redis SET | 0.300 ms | 3.00\u00d7 |" in text
    assert "**missed**" in text and "**met**" in text
    assert "\u2265 3\u00d7" in text  # throughput: at least three times the peer
    assert "![latency percentiles, sync lag, HTTP throughput](results.png)" in text
    assert "*skipped*: not in this checkout" in text
    assert "| note | synthetic |" in text


def test_results_round_trip_through_json(tmp_path: Path) -> None:
    res = _results()
    again = Results.from_json(res.to_json())
    assert [f.to_dict() for f in again.figures] == [f.to_dict() for f in res.figures]
    assert again.series == res.series
    write_markdown(again, tmp_path / "RESULTS.md")
    assert (tmp_path / "RESULTS.md").read_text().startswith("# Benchmark results")


def test_chart_is_a_png(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    path = tmp_path / "results.png"
    write_chart(_results(), path)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    write_chart(Results(), tmp_path / "empty.png")  # nothing measured: still a chart
    assert (tmp_path / "empty.png").stat().st_size > 0


def test_flatten_names_nested_numbers() -> None:
    assert _flatten({"a": {"p50": 1, "p99": 2}, "n": 3}) == [("a.p50", 1), ("a.p99", 2), ("n", 3)]
