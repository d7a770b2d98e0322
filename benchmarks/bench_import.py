"""Cold import of each function next to importing its own dependency set.

    .venv/bin/python -m benchmarks.bench_import [--repeat 7] [--modules app functions.migrate ...]

For every handler module (``app`` and each ``functions/*.py``; new ones are
picked up by themselves) a fresh interpreter first imports it and lists the
third-party modules that import loaded (``sys.modules`` minus the standard
library, ``app``, ``chalicelib`` and ``functions``), in load order.  That list
is the module's *own dependency set*: the baseline is a fresh interpreter that
imports exactly those modules and nothing of ours.  Both are timed inside the
child (``perf_counter`` around the import statement only; interpreter start-up
excluded), ``--repeat`` times each, alternating; the figure is the median.
The ratio module ÷ dependency set is the import cost of our own code.

The environment is the Lambda one as far as imports go (``AWS_DEFAULT_REGION``,
``POWERTOOLS_SERVICE_NAME``) with tracing off (``POWERTOOLS_TRACE_DISABLED``,
as locally: with tracing on both sides import the X-Ray SDK).  Byte-code
caches are warm (one untimed import first), as on a machine that imported
once.  ``--top N`` prints the N slowest of our own modules (``-X importtime``,
self time) per handler.  Prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
OURS = ("app", "chalicelib", "functions")
ENV = {
    "AWS_DEFAULT_REGION": "us-east-1",
    "POWERTOOLS_SERVICE_NAME": "docs",
    "POWERTOOLS_TRACE_DISABLED": "true",
    "POWERTOOLS_METRICS_NAMESPACE": "Docs",
}
_DISCOVER = """
import json, sys
before = set(sys.modules)
import {module}
ours = {ours!r}
std = sys.stdlib_module_names
new = [m for m in sys.modules if m not in before]
third = [m for m in new if m.split('.')[0] not in std and m.split('.')[0] not in ours
         and not m.split('.')[0].startswith('_') and sys.modules[m] is not None]
print(json.dumps(third))
"""
_TIME_MODULE = """
import time
t = time.perf_counter_ns()
import {module}
print(time.perf_counter_ns() - t)
"""
_TIME_DEPS = """
import importlib, time
names = {names!r}
t = time.perf_counter_ns()
for name in names:
    try:
        importlib.import_module(name)
    except Exception:
        pass
print(time.perf_counter_ns() - t)
"""


def handler_modules() -> list[str]:
    found = ["app"]
    for path in sorted((ROOT / "functions").glob("*.py")):
        if path.stem != "__init__":
            found.append(f"functions.{path.stem}")
    return found


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("POWERTOOLS_", "DOCS_"))}
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # warm byte-code caches
    env.update(ENV)
    return env


def _run(code: str) -> str:
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env=_env(),
        capture_output=True,
        text=True,
        check=False,
    )
    if out.returncode != 0:
        raise RuntimeError(out.stderr.strip().splitlines()[-1] if out.stderr else "failed")
    return out.stdout.strip().splitlines()[-1]


def dependency_set(module: str) -> list[str]:
    names: list[str] = json.loads(_run(_DISCOVER.format(module=module, ours=OURS)))
    return names


def own_modules(module: str, top: int) -> list[tuple[str, float]]:
    """Our slowest modules by self time, from ``-X importtime`` (ms)."""
    out = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", f"import {module}"],
        cwd=ROOT, env=_env(), capture_output=True, text=True, check=False,
    )  # fmt: skip
    rows = []
    for line in out.stderr.splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        self_us, _, name = (part.strip() for part in line[len("import time:") :].split("|"))
        if name.split(".")[0] in OURS:
            rows.append((name, int(self_us) / 1000))
    rows.sort(key=lambda r: -r[1])
    return rows[:top]


def measure(module: str, repeat: int) -> dict[str, Any]:
    deps = dependency_set(module)
    _run(_TIME_MODULE.format(module=module))  # byte-code caches
    mod_ns: list[int] = []
    dep_ns: list[int] = []
    for i in range(repeat):
        pair = ("mod", "deps") if i % 2 == 0 else ("deps", "mod")
        for which in pair:
            if which == "mod":
                mod_ns.append(int(_run(_TIME_MODULE.format(module=module))))
            else:
                dep_ns.append(int(_run(_TIME_DEPS.format(names=deps))))
    mod_ms = statistics.median(mod_ns) / 1e6
    dep_ms = statistics.median(dep_ns) / 1e6
    top = {d.split(".")[0] for d in deps}
    return {
        "module_ms": round(mod_ms, 1),
        "deps_ms": round(dep_ms, 1),
        "ratio": round(mod_ms / dep_ms, 3) if dep_ms else None,
        "module_min_ms": round(min(mod_ns) / 1e6, 1),
        "deps_min_ms": round(min(dep_ns) / 1e6, 1),
        "deps_packages": sorted(top),
        "deps_modules": len(deps),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--modules", nargs="*", default=None)
    parser.add_argument("--top", type=int, default=0, help="list our N slowest modules")
    args = parser.parse_args()
    report: dict[str, Any] = {"bench": "import", "repeat": args.repeat, "modules": {}}
    for module in args.modules or handler_modules():
        try:
            row = measure(module, args.repeat)
        except RuntimeError as exc:
            print(f"{module}: not importable here ({exc})", flush=True)
            continue
        report["modules"][module] = row
        print(
            f"{module:<28} {row['module_ms']:>7.1f} ms  deps {row['deps_ms']:>7.1f} ms"
            f"  {row['ratio']:.2f}x  ({', '.join(row['deps_packages'])})",
            flush=True,
        )
        if args.top:
            for name, ms in own_modules(module, args.top):
                print(f"    {ms:7.1f} ms self  {name}")
    print(json.dumps(report))


if __name__ == "__main__":
    main()
