"""Cold import of each function as deployed: the built bundle, the runtime's Python,
the function's own environment from template.yaml, tracing on.

    .venv/bin/python -m benchmarks.bench_deployed_import [--build-dir .aws-sam/build]
        [--repeat 5] [--functions ApiFunction ...] [--source-too]

What runs is what Lambda's init phase runs: a fresh python3.13 (``-I -S``: no
site-packages, nothing of .venv) whose ``sys.path`` is the function's code
directory then the layer's ``python/``, importing the handler's module.  The code
is ``--build-dir``'s ``<Function>/`` (``sam build``'s output) when given, else
staged and compiled the way the ``Makefile`` target does (scripts/lambda_bundle.py
``code``).  The layer is ``--build-dir``'s ``DepsLayer/python`` on an arm64 machine;
elsewhere its arm64 wheels cannot load, so the same requirements are staged for
this machine (with the pinned boto3 standing in for the runtime's, compiled too)
and kept under var/bench-deps/ for the next run.

The environment is the function's (Globals merged with its own; intrinsic values
become placeholders) plus what Lambda sets (``LAMBDA_TASK_ROOT``,
``AWS_LAMBDA_FUNCTION_NAME`` ...), so Powertools traces and the X-Ray SDK
patches what ``DOCS_TRACE_PATCH`` declares.  The figure is the median of
``--repeat`` runs of ``perf_counter`` around the import statement (interpreter
start-up excluded), with the number of modules it loaded.  ``--source-too`` also
times the same bundle without its bytecode (what shipped before the build compiled
it).  Prints a table, then one JSON line.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from types import ModuleType
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
_TIME = """
import sys, time
sys.path[:0] = [{code!r}, {deps!r}]
t = time.perf_counter_ns()
import {module}
elapsed = time.perf_counter_ns() - t
print(elapsed, len(sys.modules))
"""


def _bundle() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "lambda_bundle", ROOT / "scripts/lambda_bundle.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["lambda_bundle"] = module
    spec.loader.exec_module(module)
    return module


class _Loader(yaml.SafeLoader):
    """CloudFormation's short-form tags (!Ref, !Sub ...) read as None."""


_Loader.add_multi_constructor("!", lambda loader, suffix, node: None)


def functions() -> dict[str, dict[str, Any]]:
    """Each code function's handler module and environment (Globals + its own)."""
    template = yaml.load((ROOT / "template.yaml").read_text(), Loader=_Loader)
    common = template["Globals"]["Function"]["Environment"]["Variables"]
    found: dict[str, dict[str, Any]] = {}
    for name, resource in template["Resources"].items():
        if resource["Type"] != "AWS::Serverless::Function":
            continue
        props = resource["Properties"]
        if props.get("InlineCode"):
            continue
        env = {**common, **props.get("Environment", {}).get("Variables", {})}
        found[name] = {
            "module": props["Handler"].rpartition(".")[0],
            "handler": props["Handler"],
            "env": {
                k: (v if isinstance(v, str) else f"placeholder-{k.lower()}") for k, v in env.items()
            },
        }
    return found


def _lambda_env(name: str, spec: dict[str, Any], code: Path) -> dict[str, str]:
    env = dict(spec["env"])
    env.update(
        PATH=os.environ.get("PATH", "/usr/bin:/bin"),
        LAMBDA_TASK_ROOT=str(code),
        LAMBDA_RUNTIME_DIR="/var/runtime",
        _HANDLER=spec["handler"],
        AWS_LAMBDA_FUNCTION_NAME=f"docs-{name}",
        AWS_LAMBDA_FUNCTION_VERSION="1",
        AWS_LAMBDA_FUNCTION_MEMORY_SIZE="1024",
        AWS_REGION="us-east-1",
        AWS_DEFAULT_REGION="us-east-1",
        AWS_EXECUTION_ENV="AWS_Lambda_python3.13",
        AWS_XRAY_CONTEXT_MISSING="IGNORE_ERROR",
        AWS_XRAY_DAEMON_ADDRESS="127.0.0.1:2000",
        _X_AMZN_TRACE_ID="Root=1-00000000-000000000000000000000000;Parent=0000000000000000;Sampled=1",
    )
    return env


def _deps_for_this_machine(bundle: ModuleType, python: str) -> Path:
    """The layer's requirements for this machine and python3.13, cached by their pins."""
    digest = hashlib.sha256((ROOT / "requirements.txt").read_bytes()).hexdigest()[:12]
    machine = platform.machine()
    target = ROOT / "var" / "bench-deps" / f"{machine}-{bundle.RUNTIME}-{digest}"
    if not (target / ".complete").exists():
        version = subprocess.run(
            [python, "-c", "import platform; print(platform.python_version())"],
            capture_output=True, text=True, check=True,
        ).stdout.strip()  # fmt: skip
        bundle.stage_deps(target, machine=machine, python=version, with_aws_sdk=True)
        bundle.compile_bytecode(target, bundle.LAYER_ROOT, python)
        (target / ".complete").write_text("")
    return target


def _without_bytecode(directory: Path, into: Path) -> Path:
    shutil.copytree(directory, into, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    return into


def _time(python: str, module: str, code: Path, deps: Path, env: dict[str, str]) -> tuple[int, int]:
    script = _TIME.format(code=str(code), deps=str(deps), module=module)
    out = subprocess.run(
        [python, "-I", "-S", "-B", "-c", script],
        cwd=code, env=env, capture_output=True, text=True, check=False,
    )  # fmt: skip
    if out.returncode != 0:
        raise RuntimeError(out.stderr.strip().splitlines()[-1] if out.stderr else "failed")
    ns, modules = out.stdout.strip().splitlines()[-1].split()
    return int(ns), int(modules)


def measure(
    python: str, name: str, spec: dict[str, Any], code: Path, deps: Path, repeat: int
) -> dict[str, Any]:
    env = _lambda_env(name, spec, code)
    runs = [_time(python, spec["module"], code, deps, env) for _ in range(repeat)]
    times = [ns for ns, _ in runs]
    return {
        "module": spec["module"],
        "ms": round(statistics.median(times) / 1e6, 1),
        "min_ms": round(min(times) / 1e6, 1),
        "modules": runs[-1][1],
        "trace_patch": spec["env"].get("DOCS_TRACE_PATCH", ""),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--build-dir", type=Path, default=None, help="sam build's output")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--functions", nargs="*", default=None)
    parser.add_argument("--source-too", action="store_true", help="also time it without .pyc")
    parser.add_argument("--python", default=None, help="the runtime's python3.13")
    args = parser.parse_args()
    bundle = _bundle()
    python = bundle.runtime_python(args.python)
    if python is None:
        raise SystemExit("needs python3.13 (--python, $LAMBDA_PYTHON, PATH or pyenv)")
    specs = functions()
    names = args.functions or sorted(specs)
    layer = args.build_dir / "DepsLayer" / "python" if args.build_dir else None
    if layer is not None and layer.is_dir() and platform.machine() == "aarch64":
        deps = layer
    else:
        deps = _deps_for_this_machine(bundle, python)
    report: dict[str, Any] = {"bench": "deployed_import", "python": python, "functions": {}}
    with tempfile.TemporaryDirectory(prefix="bench-deployed-") as tmp:
        staged = Path(tmp, "code")
        bundle.stage_code(staged)
        bundle.compile_bytecode(staged, bundle.TASK_ROOT, python)
        plain: tuple[Path, Path] | None = None
        if args.source_too:
            plain = (
                _without_bytecode(staged, Path(tmp, "code-src")),
                _without_bytecode(deps, Path(tmp, "deps-src")),
            )
        for name in names:
            built = args.build_dir / name if args.build_dir else None
            code = built if built is not None and built.is_dir() else staged
            row = measure(python, name, specs[name], code, deps, args.repeat)
            line = (
                f"{name:<24} {row['module']:<26} {row['ms']:>7.1f} ms  {row['modules']:>4} modules"
            )
            if plain is not None:
                source = measure(python, name, specs[name], *plain, args.repeat)
                row["source_ms"], row["source_modules"] = source["ms"], source["modules"]
                line += f"   source only {source['ms']:>7.1f} ms"
            report["functions"][name] = row
            print(f"{line}   patch: {row['trace_patch'] or '-'}", flush=True)
    print(json.dumps(report))


if __name__ == "__main__":
    main()
