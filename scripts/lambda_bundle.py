#!/usr/bin/env python3
"""Stage what the Lambda functions run, and nothing else (``sam build`` calls it
through the ``Makefile``; ``docs/deploy.md``).

    python scripts/lambda_bundle.py code DIR   app.py, chalicelib/ (minus the CLI alias), functions/
    python scripts/lambda_bundle.py deps DIR   requirements.txt for python3.13 arm64, minus what
                                               no Lambda code path imports (DepsLayer's python/)
    (both also write the bytecode, compiled by the runtime's Python: see ``compile_bytecode``)
    python scripts/lambda_bundle.py check      stage both for this machine (python3.13) and import
                                               every handler in a bare interpreter
    python scripts/lambda_bundle.py sizes DIR  unzipped and zipped size of each directory

Needs ``pip`` and ``packaging`` (both in .venv) and the package index (``deps``, ``check``).
"""

from __future__ import annotations

import argparse
import importlib.metadata
import io
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Iterable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# What every function's bundle holds (paths relative to the repository root) …
CODE = ("app.py", "chalicelib", "functions")
# … minus these: the dev CLI's alias (it imports devtools/, which is not bundled either)
LEFT_OUT = ("chalicelib/cli.py",)
SKIPPED = ("__pycache__", "*.pyc", "*.pyo", ".*")

RUNTIME = "3.13"  # template.yaml Globals: python3.13, arm64
# Where Lambda puts a function's code and a layer's python/ directory: the file names
# the bytecode records, so tracebacks name the deployed paths.
TASK_ROOT, LAYER_ROOT = "/var/task", "/opt/python"
PLATFORMS = {
    "aarch64": ("manylinux_2_28_aarch64", "manylinux2014_aarch64"),
    "x86_64": ("manylinux_2_28_x86_64", "manylinux2014_x86_64"),
}
# Declared dependencies that no Lambda code path imports, by the package declaring them
# (None: all of them).  They are installed by pip, then removed with their files.
UNUSED_DEPENDENCIES: dict[str, frozenset[str] | None] = {
    # Chalice's runtime is chalice/app.py, stdlib only (what ``chalice package``
    # ships); click, pyyaml, inquirer, pip, setuptools, wheel … serve its CLI.
    "chalice": None,
    # opensearch-py 3.x requires opensearch-protobufs (grpcio + protobuf, ~19 MB) for
    # its gRPC transport; the HTTP client the adapter uses never imports them.
    "opensearch-py": frozenset({"opensearch-protobufs"}),
}
CHALICE_RUNTIME_FILES = ("chalice/__init__.py", "chalice/app.py", "chalice/py.typed")
# The Lambda Python runtime provides the AWS SDK (as Powertools' own layer assumes);
# ``deps --with-aws-sdk`` bundles the pinned one instead.
AWS_SDK = frozenset({"boto3", "botocore", "s3transfer"})


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _skipped(path: Path) -> bool:
    return any(path.match(pattern) for pattern in SKIPPED) or any(
        part == "__pycache__" for part in path.parts
    )


def code_files() -> list[Path]:
    """The runtime source files, relative to ROOT, in a stable order."""
    files: list[Path] = []
    for entry in CODE:
        path = ROOT / entry
        found = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
        for file in found:
            rel = file.relative_to(ROOT)
            if rel.as_posix() in LEFT_OUT or _skipped(rel):
                continue
            files.append(rel)
    return files


def stage_code(dest: Path) -> list[Path]:
    dest.mkdir(parents=True, exist_ok=True)
    files = code_files()
    for rel in files:
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / rel, target)
    return files


# ------------------------------------------------------------------ bytecode
def runtime_python(given: str | None = None) -> str | None:
    """An interpreter of the runtime's Python version (RUNTIME), or None.

    ``.pyc`` files are specific to a Python minor version (3.13's magic number is
    the same for every 3.13.x, and differs from 3.12's and 3.14's): bytecode written
    by another version is ignored at import, so only the runtime's own can compile
    it.  Tried in order: ``given`` (``--python``), ``$LAMBDA_PYTHON``, ``python3.13``
    on the PATH, then pyenv's 3.13 installs."""
    candidates = [given, os.environ.get("LAMBDA_PYTHON"), f"python{RUNTIME}"]
    pyenv = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv")) / "versions"
    candidates += [str(p) for p in sorted(pyenv.glob(f"{RUNTIME}*/bin/python{RUNTIME}"))]
    for candidate in filter(None, candidates):
        if shutil.which(candidate) is None and not Path(candidate).is_file():
            continue
        probe = subprocess.run(
            [candidate, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        if probe.returncode == 0 and probe.stdout.strip() == RUNTIME:
            return candidate
    return None


def compile_bytecode(directory: Path, recorded_root: str, python: str | None) -> bool:
    """Write ``__pycache__/*.cpython-313.pyc`` next to every source file in ``directory``.

    Invalidation mode ``unchecked-hash``: the runtime imports the ``.pyc`` without
    looking at the source.  A timestamp ``.pyc`` would be checked against the source's
    mtime, which the zip (2-second resolution) does not keep, and Lambda's read-only
    ``/var/task`` would then compile every module again at each cold start, in memory.
    The artifact is immutable, so there is nothing to check.  Returns False (and the
    bundle ships source only, which imports 3-5 times slower) when no interpreter of
    the runtime's version is found."""
    if python is None:
        print(
            f"warning: no python{RUNTIME} found (--python, $LAMBDA_PYTHON, PATH, pyenv): "
            f"{directory} ships source only; every cold start compiles it again",
            file=sys.stderr,
        )
        return False
    result = subprocess.run(
        [python, "-m", "compileall", "-q", "-j", "0", "--invalidation-mode", "unchecked-hash",
         "-s", str(directory), "-p", recorded_root, str(directory)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    if result.returncode != 0:
        # a dependency may carry files no Lambda path imports that do not compile
        # (templates, Python 2 examples); everything else was compiled
        print(f"compileall: {result.stdout.strip()[-2000:]}", file=sys.stderr)
    return True


# ------------------------------------------------------------------ dependencies
def _requirements(path: Path) -> list[str]:
    lines = []
    for raw in path.read_text().splitlines():
        line = raw.split("#", 1)[0].strip()
        if line and not line.startswith("-"):
            lines.append(line)
    return lines


def _marker_env(machine: str, python: str) -> dict[str, str]:
    """Environment markers of the target: ``python`` is "3.13" or "3.13.1" (pip's
    ``--python-version 3.13`` means 3.13.0)."""
    from packaging.markers import default_environment

    env = dict(default_environment())
    full = python if python.count(".") == 2 else f"{python}.0"
    env.update(
        python_version=".".join(full.split(".")[:2]),
        python_full_version=full,
        implementation_name="cpython",
        platform_python_implementation="CPython",
        sys_platform="linux",
        platform_system="Linux",
        os_name="posix",
        platform_machine=machine,
    )
    return env


def runtime_closure(site: Path, roots: Iterable[str], env: dict[str, str]) -> set[str]:
    """Distributions reachable from ``roots`` (requirement strings), following each
    installed distribution's Requires-Dist under ``env``, minus UNUSED_DEPENDENCIES."""
    from packaging.requirements import Requirement

    dists = {
        canonical(d.metadata["Name"]): d for d in importlib.metadata.distributions(path=[str(site)])
    }
    keep: set[str] = set()
    seen: set[tuple[str, frozenset[str]]] = set()
    todo = [(canonical(r.name), frozenset(r.extras)) for r in map(Requirement, roots)]
    while todo:
        name, extras = todo.pop()
        if (name, extras) in seen:
            continue
        seen.add((name, extras))
        if name not in dists:
            raise SystemExit(f"{name} is required but pip did not install it into {site}")
        keep.add(name)
        unused = UNUSED_DEPENDENCIES.get(name, frozenset())
        for spec in dists[name].requires or []:
            req = Requirement(spec)
            dep = canonical(req.name)
            if unused is None or dep in unused:
                continue
            if req.marker is not None and not any(
                req.marker.evaluate({**env, "extra": extra}) for extra in (extras or {""})
            ):
                continue
            todo.append((dep, frozenset(req.extras)))
    return keep


def _remove_distribution(site: Path, dist: importlib.metadata.Distribution) -> None:
    for file in dist.files or []:
        path = (site / file).resolve()
        if site.resolve() in path.parents and path.is_file():
            path.unlink()
    info = Path(str(dist._path))  # type: ignore[attr-defined]
    shutil.rmtree(info, ignore_errors=True)


def _prune_empty_dirs(site: Path) -> None:
    for directory in sorted((p for p in site.rglob("*") if p.is_dir()), reverse=True):
        if not any(directory.iterdir()):
            directory.rmdir()


def stage_deps(
    dest: Path, *, machine: str = "aarch64", python: str = RUNTIME, with_aws_sdk: bool = False
) -> list[str]:
    """pip-install requirements.txt for the Lambda platform into ``dest``, then remove
    every distribution outside the runtime closure; returns what was removed."""
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    platforms = [arg for tag in PLATFORMS[machine] for arg in ("--platform", tag)]
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
         "--no-compile", "--target", str(dest), "--implementation", "cp",
         "--python-version", python, "--only-binary=:all:", *platforms,
         "-r", str(ROOT / "requirements.txt")],
        check=True,
    )  # fmt: skip
    roots = _requirements(ROOT / "requirements.txt")
    keep = runtime_closure(dest, roots, _marker_env(machine, python))
    if not with_aws_sdk:
        keep -= AWS_SDK
    removed = []
    for dist in importlib.metadata.distributions(path=[str(dest)]):
        name = canonical(dist.metadata["Name"])
        if name not in keep:
            _remove_distribution(dest, dist)
            removed.append(name)
    chalice = dest / "chalice"
    for file in chalice.rglob("*"):
        if file.is_file() and file.relative_to(dest).as_posix() not in CHALICE_RUNTIME_FILES:
            file.unlink()
    shutil.rmtree(dest / "bin", ignore_errors=True)  # console scripts
    _prune_empty_dirs(dest)
    return sorted(removed)


# ------------------------------------------------------------------ measuring
def sizes(directory: Path) -> tuple[int, int]:
    """(unzipped bytes, zipped bytes) as Lambda counts them."""
    unzipped = 0
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for file in sorted(p for p in directory.rglob("*") if p.is_file()):
            unzipped += file.stat().st_size
            archive.write(file, file.relative_to(directory).as_posix())
    return unzipped, len(buffer.getvalue())


def _mb(n: int) -> str:
    return f"{n / 1e6:.1f} MB"


HANDLER_MODULES = (
    "app",
    "functions.migrate",
    "functions.process_upload",
    "functions.sync_search",
)
_CHECK = """
import importlib, importlib.util, sys
for name in {modules!r}:
    importlib.import_module(name)
from opensearchpy import OpenSearch
from chalicelib.adapters.opensearch import OpenSearchIndex
OpenSearch(hosts=["http://127.0.0.1:9"]).transport
import psycopg
assert psycopg.pq.__impl__ == "binary", psycopg.pq.__impl__
for absent in ("grpc", "google.protobuf", "devtools", "tests", "chalicelib.cli", "click", "pip"):
    try:
        found = importlib.util.find_spec(absent)
    except ModuleNotFoundError:
        found = None
    assert found is None, absent + " is in the bundle"
assert not any(m.split(".")[0] in ("grpc", "devtools") for m in sys.modules), sorted(sys.modules)
print("ok:", len(sys.modules), "modules imported")
"""


def check(python: str) -> int:
    """Stage code + deps for this machine and import every handler module in a bare
    interpreter (-I -S: no site-packages), with the pinned AWS SDK standing in for
    the runtime's."""
    machine = platform.machine()
    version = subprocess.run(
        [python, "-c", "import platform; print(platform.python_version())"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="lambda-bundle-") as tmp:
        code, deps = Path(tmp, "code"), Path(tmp, "deps")
        stage_code(code)
        removed = stage_deps(deps, machine=machine, python=version, with_aws_sdk=True)
        print("removed:", ", ".join(removed))
        prelude = f"import sys; sys.path[:0] = [{str(code)!r}, {str(deps)!r}]\n"
        env = {"PATH": os.environ.get("PATH", ""), "AWS_DEFAULT_REGION": "us-east-1"}
        result = subprocess.run(
            [python, "-I", "-S", "-c", prelude + _CHECK.format(modules=HANDLER_MODULES)],
            cwd=tmp, env=env, check=False,
        )  # fmt: skip
        return result.returncode


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    interpreter = {"help": f"the python{RUNTIME} that compiles the bytecode"}
    p = sub.add_parser("code")
    p.add_argument("dir", type=Path)
    p.add_argument("--python", **interpreter)
    p = sub.add_parser("deps")
    p.add_argument("dir", type=Path)
    p.add_argument("--with-aws-sdk", action="store_true", help="bundle the pinned boto3")
    p.add_argument("--python", **interpreter)
    p = sub.add_parser("check")
    p.add_argument("--python", default=f"python{RUNTIME}", help="the interpreter to import with")
    sub.add_parser("sizes").add_argument("dirs", type=Path, nargs="+")
    args = parser.parse_args(argv)
    if args.command == "code":
        print(f"staged {len(stage_code(args.dir))} files into {args.dir}")
        compile_bytecode(args.dir, TASK_ROOT, runtime_python(args.python))
    elif args.command == "deps":
        removed = stage_deps(args.dir, with_aws_sdk=args.with_aws_sdk)
        print(f"staged dependencies into {args.dir}; left out: {', '.join(removed)}")
        compile_bytecode(args.dir, LAYER_ROOT, runtime_python(args.python))
    elif args.command == "check":
        return check(args.python)
    else:
        for directory in args.dirs:
            unzipped, zipped = sizes(directory)
            print(f"{directory}: {_mb(unzipped)} unzipped, {_mb(zipped)} zipped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
