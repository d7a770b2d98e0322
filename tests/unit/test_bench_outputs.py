"""Where a benchmark run writes: only a full run replaces the committed results."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks import report, run


@pytest.fixture
def tree(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    def measure(quick: bool, res: report.Results) -> None:
        res.figures.append(
            report.Figure(
                section="handlers",
                name="get hit",
                value=1.0,
                unit="ms",
                baseline_name="redis get",
                baseline=0.5,
            )
        )

    monkeypatch.setattr(run, "ROOT", tmp_path)
    monkeypatch.setattr(run, "SECTIONS", {"handlers": ("fake", measure), "sync": ("fake", measure)})
    (tmp_path / "benchmarks").mkdir()
    return tmp_path


@pytest.mark.parametrize(
    "argv", [["--quick"], ["--only", "handlers"], ["--skip", "sync"], ["--quick", "--update"]]
)
def test_smoke_and_partial_runs_leave_the_committed_results_alone(
    tree: Path, argv: list[str]
) -> None:
    assert run.main(argv) == 0
    assert list((tree / "benchmarks").iterdir()) == []
    written = tree / "var" / "bench" / "results"
    assert {p.name for p in written.iterdir()} == {"RESULTS.md", "results.json", "results.png"}
    mode = report.Results.from_json((written / "results.json").read_text()).meta["mode"]
    assert ("quick" in mode) == ("--quick" in argv)
    assert ("partial" in mode) == (argv != ["--quick"] and "--update" not in argv)


def test_a_full_run_replaces_the_committed_results(tree: Path) -> None:
    assert run.main([]) == 0
    names = {p.name for p in (tree / "benchmarks").iterdir()}
    assert names == {"RESULTS.md", "results.json", "results.png"}
    assert not (tree / "var").exists()
