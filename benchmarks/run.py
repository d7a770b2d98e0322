"""The one benchmark command: run every benchmark, write RESULTS.md and the chart.

    ./scripts/bench.sh [--quick] [--only handlers http ...] [--skip bundle ...]
    .venv/bin/python -m benchmarks.run ...          (the same, without the set-up)

Each section runs one benchmark module in its own process (so imports, pools
and memory of one never colour the next), passes its output through as
progress, and reads the JSON line it prints last.  Every figure is turned into
a ``report.Figure``: a value beside a bare baseline measured in the same run,
and the ratio.  Sections whose tool or module is missing are reported as
skipped, with the reason, instead of failing the run; a section that fails is
reported as failed and the others still run.  ``benchmarks/bench_realtime.py``
is run when it exists (its last line may carry ``"figures"`` in the
``Figure`` shape; otherwise its numbers are listed as they are).

A full run writes the committed ``benchmarks/RESULTS.md``, ``results.png`` and
``results.json``; a smoke run (``--quick``, two to five minutes with small
counts, noisy and saying so) or a partial one (``--only`` / ``--skip``) writes
under ``var/bench/results/`` and leaves the committed results alone (``--out``
elsewhere; ``--update`` merges a full-count partial run into the committed ones).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchmarks import peers
from benchmarks.http_section import http
from benchmarks.report import Figure, Results, write_chart, write_markdown
from benchmarks.runner import ROOT, Skipped, latency_figure, run_module

LAMBDA_UNZIPPED_LIMIT = 250 * 1000 * 1000  # bytes, function + layers
LAMBDA_ZIP_UPLOAD_LIMIT = 50 * 1000 * 1000


# ------------------------------------------------------------------ sections
def handlers(quick: bool, res: Results) -> None:
    n = ["--hits", "400", "--misses", "150", "--writes", "150", "--rounds", "3"] if quick else []
    api = run_module("benchmarks.bench_api", n)
    hit = latency_figure("handlers", "GET hit", api["hit"], 3.0)
    hit.note = f"the target also wants p50 < 1 ms: {'met' if hit.value < 1.0 else 'missed'}"
    res.add(
        [
            hit,
            latency_figure("handlers", "GET miss", api["miss"], 2.0),
            latency_figure("handlers", "write (POST /changes)", api["write"], 2.0),
        ]
    )
    paths = run_module("benchmarks.bench_paths", ["--n", "60", "--docs", "60"] if quick else [])
    for key in ("search", "list_miss", "list_hit", "batch"):
        res.add([latency_figure("handlers", paths[key]["name"], paths[key])])


def mix(quick: bool, res: Results) -> None:
    args = (
        [
            "--docs",
            "200",
            "--ops",
            "2000",
            "--warmup",
            "1000",
            "--off-ops",
            "500",
            "--down-ops",
            "200",
        ]
        if quick
        else [
            "--docs",
            "1000",
            "--ops",
            "10000",
            "--warmup",
            "3000",
            "--off-ops",
            "2000",
            "--down-ops",
            "500",
        ]
    )
    out = run_module("benchmarks.bench_cache_mix", args)
    on, off = out["phases"]["cache on"], out["phases"]["cache off"]
    res.add(
        [
            Figure(
                "mix",
                "hit ratio",
                on["hit_ratio"] * 100,
                "%",
                "target 95 %",
                95.0,
                stat="",
                target=1.0,
                higher_is_better=True,
            ),
            Figure(
                "mix",
                "PG round trips per 1000 reads",
                on["pg_round_trips_per_1k_reads"],
                "",
                "the same mix with the cache off",
                off["pg_round_trips_per_1k_reads"],
                stat="",
                target=0.1,
            ),
            Figure(
                "mix",
                "read latency, cache on",
                on["read"]["p50_ms"],
                "ms",
                "cache off",
                off["read"]["p50_ms"],
                p99=on["read"]["p99_ms"],
                baseline_p99=off["read"]["p99_ms"],
            ),
        ]
    )
    down = out["phases"].get("redis down")
    if down:
        res.add(
            [
                Figure(
                    "mix",
                    "read latency, Redis down",
                    down["read"]["p50_ms"],
                    "ms",
                    "cache on",
                    on["read"]["p50_ms"],
                    p99=down["read"]["p99_ms"],
                    baseline_p99=on["read"]["p99_ms"],
                )
            ]
        )


def imports(quick: bool, res: Results) -> None:
    out = run_module("benchmarks.bench_import", ["--repeat", "3" if quick else "5"])
    for module, row in out["modules"].items():
        res.add(
            [
                Figure(
                    "import",
                    f"import {module}",
                    row["module_ms"],
                    "ms",
                    f"its dependency set ({row['deps_modules']} modules)",
                    row["deps_ms"],
                    stat="median",
                    # a handler that loads no third-party module has no baseline to
                    # be a multiple of: its whole import is ours, listed without a target
                    target=1.3 if row["deps_modules"] else None,
                    note=", ".join(row["deps_packages"]) or "no third-party modules",
                )
            ]
        )


def sync(quick: bool, res: Results) -> None:
    args = ["--seconds", "8" if quick else "30", "--docs", "2000" if quick else "20000"]
    out = run_module("benchmarks.bench_search_sync", args)
    lag, fill = out["lag"], out["backfill"]
    base = lag.get("baseline_index_ms", {})
    for p in ("50", "99"):
        res.add(
            [
                Figure(
                    "sync",
                    f"acknowledged lag at {lag['achieved_rate']} writes/s",
                    lag["acked_lag_ms"][p],
                    "ms",
                    "one bare OpenSearch index call",
                    base.get(p, 0.0),
                    stat=f"p{p}",
                    target=None,
                ),
                Figure(
                    "sync",
                    "searchable lag (prober)",
                    lag["searchable_lag_ms"][p],
                    "ms",
                    "one bare OpenSearch index call",
                    base.get(p, 0.0),
                    stat=f"p{p}",
                ),
            ]
        )
    res.series["sync_lag_ms"] = lag.get("series", [])
    res.extras["sync"] = [
        ["OpenSearch", out["opensearch"]],
        ["writes", f"{lag['writes']} ({lag['acked_n']} acknowledged rows)"],
        ["p99 ≤ 1 s", "met" if lag["pass"] else "missed"],
        [
            "backfill",
            f"{fill['docs']} documents in {fill['seconds']} s = "
            f"{fill['docs_per_s']:.0f} documents/s",
        ],
    ]


def realtime(quick: bool, res: Results) -> None:
    if not (ROOT / "benchmarks" / "bench_realtime.py").exists():
        raise Skipped("benchmarks/bench_realtime.py is not in this checkout")
    helptext = subprocess.run(
        [sys.executable, "-m", "benchmarks.bench_realtime", "--help"],
        cwd=ROOT, capture_output=True, text=True, check=False,
    ).stdout  # fmt: skip
    out = run_module(
        "benchmarks.bench_realtime", ["--quick"] if quick and "--quick" in helptext else []
    )
    figures = out.get("figures")
    if isinstance(figures, list) and figures:
        for data in figures:
            res.add([Figure.from_dict({"section": "realtime", **data})])
        return
    res.extras["realtime"] = [[key, json.dumps(value)] for key, value in _flatten(out)]


def _flatten(data: Any, prefix: str = "") -> list[tuple[str, Any]]:
    if isinstance(data, dict):
        rows: list[tuple[str, Any]] = []
        for key, value in data.items():
            rows += _flatten(value, f"{prefix}{key}.")
        return rows
    return [(prefix.rstrip("."), data)]


def upload(quick: bool, res: Results) -> None:
    out = run_module("benchmarks.bench_upload_memory", ["--mb", "20" if quick else "200"])
    base = out.get("baseline", {})
    res.add(
        [
            Figure(
                "upload",
                f"peak RSS growth, processing {out['object_mib']} MiB",
                out["peak_rss_growth_mib"],
                "MiB",
                "a bare streamed GET + sha256 of it",
                base.get("peak_rss_growth_mib", 0.0),
                stat="",
                note=f"budget {out['budget_mib']} MiB: "
                f"{'within' if out['within_budget'] else 'OVER'}; sha256 ok: {out['sha256_ok']}",
            ),
            Figure(
                "upload",
                f"processing time, {out['object_mib']} MiB",
                out["processing_s"],
                "s",
                "a bare streamed GET + sha256 of it",
                base.get("seconds", 0.0),
                stat="",
            ),
        ]
    )


def bundle(quick: bool, res: Results) -> None:
    """Stage the code and the dependency layer as ``sam build`` does; their sizes
    against Lambda's limits (the layer is cached per requirements.txt)."""
    import hashlib
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "lambda_bundle", ROOT / "scripts/lambda_bundle.py"
    )
    assert spec is not None
    assert spec.loader is not None
    lambda_bundle = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(lambda_bundle)

    work = ROOT / "var" / "bench" / "bundle"
    code = work / "code"
    req_hash = hashlib.sha256((ROOT / "requirements.txt").read_bytes()).hexdigest()[:12]
    deps = work / f"deps-{req_hash}"
    if code.exists():
        shutil.rmtree(code)
    lambda_bundle.stage_code(code)
    if not (deps / ".complete").exists():
        print("    staging the dependency layer for the Lambda platform (pip, once)", flush=True)
        try:
            lambda_bundle.stage_deps(deps)
        except subprocess.CalledProcessError as exc:
            raise Skipped(f"pip could not stage the layer ({exc})") from exc
        (deps / ".complete").write_text(req_hash)
    c_unzipped, c_zipped = lambda_bundle.sizes(code)
    (deps / ".complete").unlink()
    d_unzipped, d_zipped = lambda_bundle.sizes(deps)
    (deps / ".complete").write_text(req_hash)
    mb = 1e6
    res.add(
        [
            Figure(
                "bundle",
                "function code, unzipped",
                c_unzipped / mb,
                "MB",
                "Lambda's limit (function + layers)",
                LAMBDA_UNZIPPED_LIMIT / mb,
                stat="",
            ),
            Figure(
                "bundle",
                "DepsLayer, unzipped",
                d_unzipped / mb,
                "MB",
                "Lambda's limit (function + layers)",
                LAMBDA_UNZIPPED_LIMIT / mb,
                stat="",
            ),
            Figure(
                "bundle",
                "ApiFunction with its layer, unzipped",
                (c_unzipped + d_unzipped) / mb,
                "MB",
                "Lambda's limit (function + layers)",
                LAMBDA_UNZIPPED_LIMIT / mb,
                stat="",
                target=1.0,
            ),
            Figure(
                "bundle",
                "ApiFunction with its layer, zipped",
                (c_zipped + d_zipped) / mb,
                "MB",
                "Lambda's direct upload limit",
                LAMBDA_ZIP_UPLOAD_LIMIT / mb,
                stat="",
            ),
        ]
    )


SECTIONS: dict[str, tuple[str, Callable[[bool, Results], None]]] = {
    "handlers": ("handler paths: GET hit/miss, write, search, list, batch", handlers),
    "http": ("HTTP with wrk at several connections, next to pouchdb-server and Kinto", http),
    "mix": ("Zipf 95/5 mix: hit ratio, PG round trips per 1000 reads", mix),
    "import": ("cold import of each function vs its dependency set", imports),
    "sync": ("search sync lag at 200 writes/s, backfill", sync),
    "realtime": ("real-time delivery latency (benchmarks/bench_realtime.py)", realtime),
    "upload": ("S3 processing of a large object: peak RSS growth", upload),
    "bundle": ("Lambda artifact sizes", bundle),
}


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{os.cpu_count()} CPUs ({cpu}), {platform.system()} {platform.release()}"


def versions() -> str:
    import psycopg
    import redis

    parts = [f"Python {platform.python_version()}"]
    try:
        url = os.environ.get("DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")
        with psycopg.connect(url, connect_timeout=3) as conn:
            row = conn.execute("SHOW server_version").fetchone()
            parts.append(f"PostgreSQL {row[0] if row else '?'}")
        info = redis.Redis.from_url(os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")).info()
        parts.append(f"Redis {info.get('redis_version')}")
    except Exception as exc:  # the sections say it again, in context
        parts.append(f"({type(exc).__name__} reaching PostgreSQL/Redis)")
    search = "OPENSEARCH_URL" if os.environ.get("OPENSEARCH_URL") else "in-memory osmem-server"
    parts.append(f"search backend: {search}")
    return ", ".join(parts)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run of 2-5 minutes")
    parser.add_argument("--only", nargs="+", choices=list(SECTIONS), default=None)
    parser.add_argument("--skip", nargs="+", choices=list(SECTIONS), default=[])
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="default: benchmarks/ (full run), else var/bench/results/",
    )
    parser.add_argument(
        "--update",
        action="store_true",
        help="keep the other sections of the last results.json; replace the ones run now",
    )
    args = parser.parse_args(argv)
    chosen = [s for s in (args.only or SECTIONS) if s not in args.skip]
    partial = chosen != list(SECTIONS)
    if args.out is None:
        committed = not args.quick and (not partial or args.update)
        args.out = ROOT / "benchmarks" if committed else ROOT / "var" / "bench" / "results"
    res = Results()
    previous = args.out / "results.json"
    if args.update and previous.exists():
        res = Results.from_json(previous.read_text())
        res.figures = [f for f in res.figures if f.section not in chosen]
        for name in chosen:
            res.sections.pop(name, None)
            res.extras.pop(name, None)
            for series in [k for k in res.series if k.startswith(f"{name}_")]:
                res.series.pop(series)
        earlier = res.meta
    res.meta = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "mode": ("quick (smoke: small counts, noisy)" if args.quick else "full")
        + (f"; partial: {', '.join(chosen)} only" if partial and not args.update else ""),
        "machine": machine(),
        "load": "load average before the run: {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()),
        "versions": versions(),
    }
    if args.update and previous.exists():
        res.meta["updated"] = (
            f"{', '.join(chosen)} re-run; the rest from {earlier.get('date')} "
            f"({earlier.get('load', 'load not recorded')})"
        )
    started = time.monotonic()
    peers.prepare(chosen)  # only what the chosen sections need
    for i, name in enumerate(chosen, 1):
        title, func = SECTIONS[name]
        t0 = time.monotonic()
        print(f"[{i}/{len(chosen)}] {name}: {title}  (run so far {t0 - started:.0f} s)", flush=True)
        before = len(res.figures)
        try:
            func(args.quick, res)
        except Skipped as why:
            res.sections[name] = {"status": "skipped", "detail": str(why)}
            print(f"    skipped: {why}", flush=True)
            continue
        except Exception as exc:
            res.sections[name] = {"status": "failed", "detail": f"{type(exc).__name__}: {exc}"}
            print(f"    FAILED: {type(exc).__name__}: {exc}", flush=True)
            continue
        seconds = time.monotonic() - t0
        res.sections[name] = {"status": "ok", "seconds": round(seconds, 1)}
        for f in res.figures[before:]:
            verdict = "" if f.met is None else ("  met" if f.met else "  MISSED")
            print(
                f"    = {f.name}: {f.value:.4g} {f.unit} vs {f.baseline:.4g} "
                f"({f.ratio:.2f}x){verdict}",
                flush=True,
            )
    res.meta["wall_s"] = round(time.monotonic() - started, 1)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(res.to_json())
    write_chart(res, args.out / "results.png")
    write_markdown(res, args.out / "RESULTS.md", chart_name="results.png")
    print(
        f"wrote {args.out / 'RESULTS.md'}, results.png and results.json "
        f"in {res.meta['wall_s']:.0f} s"
    )
    failed = [n for n, s in res.sections.items() if s["status"] == "failed"]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
