"""The benchmark command's output: figures as ratios to baselines, RESULTS.md and the chart.

Every figure the command reports is a ``Figure``: a measured value, the bare
baseline measured in the same run with its absolute value, and the ratio
between them (``value / baseline``), optionally with a target on that ratio
(or on the ratio of the p99s).  ``write_markdown`` renders them grouped by
section; ``write_chart`` draws the latency percentiles per operation (each next
to its baseline), the sync lag over time, and the HTTP throughput and p99 by
connections of this service and each peer.  Kept apart from the
measuring code so that a smoke test can exercise it on synthetic numbers.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

TIMES = "\u00d7"  # the multiplication sign of a ratio
CONN = " conn."  # in the names of the HTTP figures measured per connection count
NONE = "\u2013"  # an en dash: no value


@dataclasses.dataclass
class Figure:
    """One measured value beside its bare baseline (same unit, same run)."""

    section: str
    name: str
    value: float
    unit: str
    baseline_name: str
    baseline: float
    stat: str = "p50"
    p99: float | None = None
    baseline_p99: float | None = None
    target: float | None = None  # on the ratio value / baseline (p99 / baseline p99)
    higher_is_better: bool = False
    note: str = ""
    target_stat: str = ""  # "p99": the target is on the p99 ratio

    @property
    def ratio(self) -> float:
        return _ratio(self.value, self.baseline)

    @property
    def p99_ratio(self) -> float | None:
        if self.p99 is None or self.baseline_p99 is None:
            return None
        return _ratio(self.p99, self.baseline_p99)

    @property
    def met(self) -> bool | None:
        if self.target is None:
            return None
        ratio = self.p99_ratio if self.target_stat == "p99" else self.ratio
        if ratio is None:
            return None
        if self.higher_is_better:
            return ratio >= self.target
        return ratio <= self.target

    @property
    def target_text(self) -> str:
        if self.target is None:
            return ""
        on = f"{self.target_stat} " if self.target_stat else ""
        return f"{on}{'≥' if self.higher_is_better else '≤'} {self.target:g}{TIMES}"

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["ratio"] = round(self.ratio, 3) if math.isfinite(self.ratio) else None
        p99_ratio = self.p99_ratio
        data["p99_ratio"] = (
            round(p99_ratio, 3) if p99_ratio is not None and math.isfinite(p99_ratio) else None
        )
        data["met"] = self.met
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Figure:
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


def _ratio(value: float, baseline: float) -> float:
    if not baseline:
        return math.inf if value else 1.0
    return value / baseline


@dataclasses.dataclass
class Results:
    """What one run of the command measured."""

    meta: dict[str, Any] = dataclasses.field(default_factory=dict)
    figures: list[Figure] = dataclasses.field(default_factory=list)
    # name -> [[t_s, value], ...]; "sync_lag_ms" is drawn over time
    series: dict[str, list[list[float]]] = dataclasses.field(default_factory=dict)
    # section -> {"status": "ok"|"skipped"|"failed", "seconds": float, "detail": str}
    sections: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)
    # section -> free-form extra rows (label, value) shown under its table
    extras: dict[str, list[list[str]]] = dataclasses.field(default_factory=dict)

    def add(self, figures: Iterable[Figure]) -> None:
        self.figures.extend(figures)

    def to_json(self) -> str:
        data = {
            "meta": self.meta,
            "figures": [f.to_dict() for f in self.figures],
            "series": self.series,
            "sections": self.sections,
            "extras": self.extras,
        }
        # one line per top-level key: readable diffs without one line per number
        lines = [f"{json.dumps(k)}: {json.dumps(v, ensure_ascii=False)}" for k, v in data.items()]
        return "{\n" + ",\n".join(lines) + "\n}\n"

    @classmethod
    def from_json(cls, text: str) -> Results:
        data = json.loads(text)
        return cls(
            meta=data.get("meta", {}),
            figures=[Figure.from_dict(f) for f in data.get("figures", [])],
            series=data.get("series", {}),
            sections=data.get("sections", {}),
            extras=data.get("extras", {}),
        )


# ------------------------------------------------------------------ markdown
def _num(value: float | None, unit: str = "") -> str:
    if value is None:
        return NONE
    if not math.isfinite(value):
        return "∞"
    magnitude = abs(value)
    if magnitude >= 1000:
        text = f"{value:,.0f}"
    elif magnitude >= 100:
        text = f"{value:.0f}"
    elif magnitude >= 10:
        text = f"{value:.1f}"
    elif magnitude >= 1:
        text = f"{value:.2f}"
    else:
        text = f"{value:.3f}"
    return f"{text} {unit}".rstrip()


def _verdict(figure: Figure) -> str:
    met = figure.met
    if met is None:
        return ""
    return "**met**" if met else "**missed**"


def _times(ratio: float | None) -> str:
    return f"{ratio:.2f}{TIMES}" if ratio is not None and math.isfinite(ratio) else NONE


def figure_rows(figures: Sequence[Figure]) -> list[str]:
    """A Markdown table of figures: value, baseline, ratio, p99s and their ratio,
    target, verdict."""
    lines = [
        "| figure | value | baseline | baseline value | ratio | p99 | baseline p99 | p99 ratio "
        "| target | |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for f in figures:
        name = f"{f.name} ({f.stat})" if f.stat else f.name
        lines.append(
            f"| {name} | {_num(f.value, f.unit)} | {f.baseline_name} | "
            f"{_num(f.baseline, f.unit)} | {_times(f.ratio)} | {_num(f.p99, f.unit)} | "
            f"{_num(f.baseline_p99, f.unit)} | {_times(f.p99_ratio)} | {f.target_text} | "
            f"{_verdict(f)} |"
        )
    return lines


SECTION_TITLES = {
    "handlers": "Handler paths (in process, `app.handler`)",
    "http": "HTTP through the local server, next to the peers",
    "mix": "Zipf 95/5 read/write mix",
    "import": "Cold import of each function",
    "sync": "Search sync lag at a steady write rate",
    "realtime": "Real-time delivery",
    "upload": "S3 processing of a large object",
    "bundle": "Lambda artifact sizes",
}


def render_markdown(results: Results, chart_name: str | None = None) -> str:
    meta = results.meta
    out = ["# Benchmark results", ""]
    out.append(
        "Written by `./scripts/bench.sh` (`docs/benchmarks.md` says what each figure "
        "is). Every figure is a ratio against a bare baseline measured in the same run; "
        "the absolute values stand beside it. Ratio = value ÷ baseline."
    )
    out.append("")
    for key in ("date", "mode", "machine", "load", "versions", "wall_s", "updated"):
        if key in meta:
            out.append(f"- **{key}**: {meta[key]}")
    out.append("")
    targeted = [f for f in results.figures if f.target is not None]
    if targeted:
        out += ["## Targets", ""]
        out += figure_rows(targeted)
        out.append("")
    if chart_name:
        out += [f"![latency percentiles, sync lag, HTTP throughput]({chart_name})", ""]
    sections = list(dict.fromkeys([*results.sections, *(f.section for f in results.figures)]))
    order = list(SECTION_TITLES)
    sections.sort(key=lambda s: order.index(s) if s in order else len(order))
    for section in sections:
        out += [f"## {SECTION_TITLES.get(section, section)}", ""]
        status = results.sections.get(section, {})
        if status.get("status") not in (None, "ok"):
            out += [f"*{status['status']}*: {status.get('detail', '')}", ""]
        rows = [f for f in results.figures if f.section == section]
        if rows:
            out += figure_rows(rows)
            notes = [f"- {f.name}: {f.note}" for f in rows if f.note]
            if notes:
                out += ["", *notes]
            out.append("")
        extra = results.extras.get(section)
        if extra:
            out += ["| detail | value |", "|---|---|"]
            out += [f"| {label} | {value} |" for label, value in extra]
            out.append("")
        if "seconds" in status:
            out += [f"(section took {status['seconds']:.0f} s)", ""]
    return "\n".join(out).rstrip() + "\n"


def write_markdown(results: Results, path: Path, chart_name: str | None = None) -> None:
    path.write_text(render_markdown(results, chart_name))


# ------------------------------------------------------------------ chart
def write_chart(results: Results, path: Path) -> None:
    """Up to four panels, each drawn only when the run measured it: latency p50/p99
    per operation beside its baseline (log scale), sync lag over time, and HTTP
    throughput and p99 by connections, this service and each peer."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    # the per-connection HTTP figures have panels of their own
    latency = [
        f
        for f in results.figures
        if f.unit == "ms" and f.section in ("handlers", "http") and CONN not in f.name
    ]
    lag = results.series.get("sync_lag_ms", [])
    sync_lines = [
        f
        for f in results.figures
        if f.section == "sync" and f.unit == "ms" and f.stat in ("p50", "p99")
    ]
    throughput = [f for f in results.figures if f.unit == "req/s"]
    series = results.series
    panels = [
        (draw, width)
        for draw, width, measured in (
            (_latency_panel, 3, latency),
            (_lag_panel, 2, lag or sync_lines),
            (_throughput_panel, 2, throughput or _http_lines(series, "rps")),
            (_p99_panel, 2, _http_lines(series, "p99_ms")),
        )
        if measured
    ]
    if not panels:
        panels = [(_latency_panel, 3)]  # an empty chart that says what it would show
    fig, axes = plt.subplots(
        1,
        len(panels),
        figsize=(6 * len(panels) + 2, 6.5),
        gridspec_kw={"width_ratios": [w for _, w in panels]},
        squeeze=False,
    )
    for ax, (draw, _) in zip(axes[0], panels, strict=True):
        draw(
            ax,
            latency=latency,
            lag=lag,
            sync_lines=sync_lines,
            throughput=throughput,
            series=series,
        )
    fig.suptitle(f"{results.meta.get('date', '')} {results.meta.get('mode', '')}")
    fig.tight_layout()
    fig.savefig(path, dpi=90, bbox_inches="tight")  # long tick labels are not clipped
    plt.close(fig)


def _latency_panel(ax: Any, *, latency: list[Figure], **_: Any) -> None:
    if latency:
        names = [f.name for f in latency]
        ys = list(range(len(latency)))
        h = 0.2
        series = (
            ("p50", [f.value for f in latency], -1.5 * h, "tab:blue"),
            ("p99", [f.p99 or f.value for f in latency], -0.5 * h, "lightsteelblue"),
            ("baseline p50", [f.baseline for f in latency], 0.5 * h, "tab:orange"),
            (
                "baseline p99",
                [f.baseline_p99 or f.baseline for f in latency],
                1.5 * h,
                "navajowhite",
            ),
        )
        for label, values, offset, color in series:
            ax.barh([y + offset for y in ys], values, height=h, label=label, color=color)
        ax.set_yticks(
            ys, [f"{n}\n({f.ratio:.2f}{TIMES} p50)" for n, f in zip(names, latency, strict=True)]
        )
        ax.invert_yaxis()
        ax.set_xscale("log")
        ax.legend(loc="lower right", fontsize=8)
    ax.set_xlabel("latency, ms (log)")
    ax.set_title("Latency per operation vs its bare baseline")
    ax.tick_params(axis="y", labelsize=7)


def _lag_panel(ax: Any, *, lag: list[list[float]], sync_lines: list[Figure], **_: Any) -> None:
    if lag:
        ax.plot([p[0] for p in lag], [p[1] for p in lag], ".", markersize=2, alpha=0.5)
        ax.set_yscale("log")
    styles = {"p50": ("--", "tab:red"), "p99": (":", "tab:purple")}
    for f in sync_lines:  # in the legend, not as text on the lines: close values overlap
        linestyle, color = styles[f.stat]
        ax.axhline(
            f.value,
            linestyle=linestyle,
            linewidth=1,
            color=color,
            label=f"{f.name} {f.value:.1f} ms",
        )
    if sync_lines:
        ax.legend(loc="upper right", fontsize=7)
    ax.set_xlabel("time since the first write, s")
    ax.set_ylabel("acknowledged sync lag, ms (log)")
    ax.set_title("Search sync lag over time")


def _http_lines(series: dict[str, list[list[float]]], metric: str) -> dict[tuple[str, str], Any]:
    """(workload, server) -> [[connections, value], ...] of one HTTP metric."""
    lines: dict[tuple[str, str], Any] = {}
    for key, points in series.items():
        name, _, rest = key.partition("|")
        workload, _, side = rest.partition("|")
        if name == f"http_{metric}" and side:
            lines[(workload, side)] = sorted(points)
    return lines


def _draw_http_lines(ax: Any, lines: dict[tuple[str, str], Any]) -> None:
    colors = {"read": "tab:blue", "rmw": "tab:red", "list": "tab:green"}
    styles = {"ours": ("-", "o"), "pouchdb": (":", "s"), "kinto": ("--", "^")}
    for (workload, side), points in lines.items():
        linestyle, marker = styles.get(side, ("-.", "x"))
        ax.plot(
            [p[0] for p in points],
            [p[1] for p in points],
            linestyle=linestyle,
            marker=marker,
            color=colors.get(workload, "tab:gray"),
            label=f"{workload}: {'this service' if side == 'ours' else side}",
        )
    connections = sorted({p[0] for points in lines.values() for p in points})
    ax.set_xscale("log", base=2)
    ax.set_xticks(connections, [f"{c:g}" for c in connections])
    ax.set_yscale("log")
    ax.set_xlabel("connections (wrk, one per thread)")
    ax.legend(fontsize=7, ncol=2)


def _throughput_panel(
    ax: Any, *, throughput: list[Figure], series: dict[str, list[list[float]]], **_: Any
) -> None:
    lines = _http_lines(series, "rps")
    if lines:
        _draw_http_lines(ax, lines)
        ax.set_ylabel("requests/s (read-modify-write: cycles/s; log)")
        ax.set_title("HTTP throughput, this service and the peers")
        return
    labels = [f.name for f in throughput]  # results written before the series existed
    xs = list(range(len(throughput)))
    ax.bar([x - 0.2 for x in xs], [f.value for f in throughput], 0.4, label="this service")
    ax.bar([x + 0.2 for x in xs], [f.baseline for f in throughput], 0.4, label="peer")
    ax.set_xticks(xs, labels, rotation=40, ha="right", fontsize=7)
    ax.legend(fontsize=8)
    ax.set_ylabel("requests/s")
    ax.set_title("HTTP throughput vs the peer")


def _p99_panel(ax: Any, *, series: dict[str, list[list[float]]], **_: Any) -> None:
    _draw_http_lines(ax, _http_lines(series, "p99_ms"))
    ax.set_ylabel("wrk p99 latency, ms (log)")
    ax.set_title("HTTP p99 latency, this service and the peers")
