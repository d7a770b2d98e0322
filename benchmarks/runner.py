"""Running one benchmark module as a section of ``benchmarks.run``: its process, its
progress lines and heartbeat, the JSON result it prints last."""

from __future__ import annotations

import json
import queue
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from benchmarks.report import Figure

ROOT = Path(__file__).resolve().parents[1]
HEARTBEAT_S = 15.0


class Skipped(Exception):
    """The section cannot run here (a tool or module is missing): the reason."""


# ------------------------------------------------------------------ running
def run_module(module: str, args: list[str], timeout_s: float = 900) -> dict[str, Any]:
    """Run ``python -m module args``, echo its lines as progress (and a heartbeat
    when it is quiet for a while), return the JSON line it printed last."""
    cmd = [sys.executable, "-m", module, *args]
    print(f"    $ {' '.join(cmd[1:])}", flush=True)
    proc = subprocess.Popen(
        cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1
    )
    lines: queue.Queue[str | None] = queue.Queue()

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.put(line)
        lines.put(None)

    threading.Thread(target=pump, daemon=True).start()
    last_json: dict[str, Any] | None = None
    started = time.monotonic()
    while True:
        try:
            line = lines.get(timeout=HEARTBEAT_S)
        except queue.Empty:
            if time.monotonic() - started > timeout_s:
                proc.kill()
                raise RuntimeError(f"{module} ran over {timeout_s:.0f} s") from None
            print(f"    . still measuring ({time.monotonic() - started:.0f} s)", flush=True)
            continue
        if line is None:
            break
        stripped = line.rstrip("\n")
        if stripped.startswith("{") and stripped.endswith("}"):
            try:
                last_json = json.loads(stripped)
                continue
            except json.JSONDecodeError:
                pass
        print(f"    | {stripped[:200]}", flush=True)
    code = proc.wait()
    if code != 0 and last_json is None:
        raise RuntimeError(f"{module} exited with status {code}")
    if last_json is None:
        raise RuntimeError(f"{module} printed no JSON result")
    return last_json


def latency_figure(
    section: str, name: str, row: dict[str, Any], target: float | None = None
) -> Figure:
    """A latency figure from a bench_api/bench_paths row: p50 and p99 of both."""
    api, base = row["api"], row["baseline"]
    return Figure(
        section,
        name,
        api["p50_ms"],
        "ms",
        base["name"],
        base["p50_ms"],
        p99=api["p99_ms"],
        baseline_p99=base["p99_ms"],
        target=target,
    )
