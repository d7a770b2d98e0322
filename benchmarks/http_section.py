"""The ``http`` section of ``benchmarks.run``: the service beside its peers
(pouchdb-server, Kinto) through wrk, as figures with their targets."""

from __future__ import annotations

import shutil
from typing import Any

from benchmarks import peers
from benchmarks.report import Figure, Results
from benchmarks.runner import Skipped, run_module

PEER_NAMES = {
    "pouchdb": "pouchdb-server (in memory)",
    "kinto": f"Kinto {peers.KINTO_VERSION} (PostgreSQL)",
}
WORKLOAD_LABELS = {"read": "read by id", "rmw": "read-modify-write cycles", "list": "list 20"}


def http_targets(peer: str, workload: str, conns: int) -> tuple[float | None, float | None]:
    """The targets of one wrk row against one peer: (throughput ratio, p99 ratio).

    Against pouchdb-server: reads at 8 connections ≥ 3x.  Against Kinto, a
    durable store: reads ≥ 10x and read-modify-write cycles ≥ 2x its throughput
    at 8 connections, and for both a p99 no worse than Kinto's at every
    connection count."""
    if peer == "pouchdb":
        return (3.0 if workload == "read" and conns == 8 else None), None
    if workload == "list":
        return None, None
    throughput = {"read": 10.0, "rmw": 2.0}[workload] if conns == 8 else None
    return throughput, 1.0


def http_figures(out: dict[str, Any], res: Results) -> None:
    """Throughput and p50/p99 figures of each wrk row against each peer, and the
    series the chart draws (by connections)."""
    for key, row in out["wrk"].items():
        workload, conns_text = key.split("_c")
        conns = int(conns_text)
        label = WORKLOAD_LABELS.get(workload, workload)
        ours = row["ours"]
        for side, value in row.items():
            for metric in ("rps", "p99_ms"):
                res.series.setdefault(f"http_{metric}|{workload}|{side}", []).append(
                    [conns, value[metric]]
                )
        for peer in (p for p in row if p != "ours"):
            them = row[peer]
            rps_target, p99_target = http_targets(peer, workload, conns)
            res.add(
                [
                    Figure(
                        "http",
                        f"{label}, {conns} conn., vs {peer}",
                        ours["rps"],
                        "cycles/s" if workload == "rmw" else "req/s",
                        PEER_NAMES.get(peer, peer),
                        them["rps"],
                        stat="mean",
                        target=rps_target,
                        higher_is_better=True,
                        note=(
                            f"errors, timeouts or non-2xx: {ours['errors']} vs {them['errors']}"
                            if ours["errors"] or them["errors"]
                            else ""
                        ),
                    ),
                    Figure(
                        "http",
                        f"{label}, {conns} conn., latency vs {peer}",
                        ours["p50_ms"],
                        "ms",
                        PEER_NAMES.get(peer, peer),
                        them["p50_ms"],
                        p99=ours["p99_ms"],
                        baseline_p99=them["p99_ms"],
                        target=p99_target,
                        target_stat="p99",
                    ),
                ]
            )


def http(quick: bool, res: Results) -> None:
    if not shutil.which("wrk"):
        raise Skipped("wrk is not installed (benchmarks.peers installs it with apt-get)")
    present = [
        name
        for name, there in (
            ("pouchdb", peers.pouchdb_bin().exists()),
            ("kinto", (peers.kinto_venv() / "bin" / "gunicorn").exists()),
        )
        if there
    ]
    if not present:
        raise Skipped("no peer is installed (pouchdb-server under var/bench/peer, Kinto under "
                      "var/bench/kinto)")  # fmt: skip
    args = ["--peers", *present]
    if quick:
        args += ["--connections", "1", "8", "--seconds", "2", "--rounds", "1",
                 "--fresh", "30", "--revisions", "60"]  # fmt: skip
    out = run_module("benchmarks.bench_http", args)
    http_figures(out, res)
    rmw = out.get("rmw_latency_ms")
    if rmw:
        res.add(
            [
                Figure(
                    "http",
                    "read-modify-write: the write, fresh document",
                    rmw["fresh_p50"]["ours"],
                    "ms",
                    PEER_NAMES["pouchdb"],
                    rmw["fresh_p50"]["pouchdb"],
                    p99=rmw["fresh_p99"]["ours"],
                    baseline_p99=rmw["fresh_p99"]["pouchdb"],
                    target=1.0,
                ),
                Figure(
                    "http",
                    f"read-modify-write: the write after {rmw['revisions']} revisions",
                    rmw["deep_p50"]["ours"],
                    "ms",
                    PEER_NAMES["pouchdb"],
                    rmw["deep_p50"]["pouchdb"],
                ),
            ]
        )
    extras = [
        ["local server", f"{out['workers']} workers (the default), keep-alive"],
        ["documents", f"{out['docs']} of {out['doc_bytes']} B of text each, in every server"],
        ["runs", f"{out['rounds']} per figure, {out['seconds_per_run']} s each, alternating"],
        ["peers", ", ".join(PEER_NAMES.get(p, p) for p in out.get("peers", present))],
    ]
    kinto = out.get("kinto")
    if kinto:
        extras.append(
            [
                "Kinto",
                f"{kinto['version']} on PostgreSQL (own database), gunicorn "
                f"{kinto['workers']} gthread workers of {kinto['threads']} threads, keep-alive, "
                "basic auth",
            ]
        )
    missing = [p for p in PEER_NAMES if p not in present]
    if missing:
        extras.append(["not installed", ", ".join(missing)])
    res.extras["http"] = extras
