"""What the benchmark sections need beyond the project's .venv, installed only for them.

``python -m benchmarks.run`` calls ``prepare(chosen)`` before it runs anything:
each section declares its tools in ``NEEDS`` and only the chosen sections'
tools are installed (``--only handlers`` installs nothing).  A tool that cannot
be installed is reported, and the section that needs it says why it skipped.

- ``wrk``: the HTTP load tool, with ``apt-get`` (as root);
- ``pouchdb-server``: the in-memory CouchDB-API peer, with ``npm`` into
  ``var/bench/peer``;
- ``kinto``: Kinto and gunicorn, pinned, with pip into their own virtualenv
  ``var/bench/kinto/venv`` (never into the project's ``.venv``).

Each install runs once; a version stamp beside it says what is there.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Callable, Iterable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
POUCHDB_VERSION = "4.2.0"
KINTO_VERSION = "26.5.0"
GUNICORN_VERSION = "27.0.1"
KINTO_PINS = (f"kinto[postgresql]=={KINTO_VERSION}", f"gunicorn=={GUNICORN_VERSION}")

# section -> the tools it needs, in install order
NEEDS: dict[str, tuple[str, ...]] = {"http": ("wrk", "pouchdb-server", "kinto")}


def _run(cmd: list[str], cwd: Path | None = None) -> bool:
    """Run one install command, its output to stderr; whether it succeeded."""
    print(f"    [setup] $ {' '.join(cmd)}", flush=True)
    done = subprocess.run(cmd, cwd=cwd, stdout=sys.stderr, stderr=sys.stderr, check=False)
    return done.returncode == 0


# Replaced in the tests to record the commands instead of running them.
run_command: Callable[[list[str], Path | None], bool] = _run


def pouchdb_bin() -> Path:
    return ROOT / "var" / "bench" / "peer" / "node_modules" / ".bin" / "pouchdb-server"


def kinto_venv() -> Path:
    return ROOT / "var" / "bench" / "kinto" / "venv"


def needed(sections: Iterable[str]) -> list[str]:
    """The tools the given sections need, each once, in order."""
    return list(dict.fromkeys(tool for s in sections for tool in NEEDS.get(s, ())))


def installed(tool: str) -> bool:
    """Whether ``tool`` is there, at the pinned version."""
    if tool == "wrk":
        return shutil.which("wrk") is not None
    if tool == "pouchdb-server":
        stamp = pouchdb_bin().parents[2] / ".version"
        return pouchdb_bin().exists() and _read(stamp) == POUCHDB_VERSION
    if tool == "kinto":
        stamp = kinto_venv().parent / ".version"
        return (kinto_venv() / "bin" / "gunicorn").exists() and _read(stamp) == " ".join(KINTO_PINS)
    raise ValueError(f"unknown tool {tool!r}")


def _read(path: Path) -> str:
    try:
        return path.read_text().strip()
    except OSError:
        return ""


def install(tool: str) -> str | None:
    """Install ``tool``; None when done, else why it could not be."""
    if tool == "wrk":
        if not shutil.which("apt-get"):
            return "wrk is missing and there is no apt-get (install wrk)"
        ok = run_command(["apt-get", "install", "-y", "-qq", "wrk"], None) or (
            run_command(["apt-get", "update", "-qq"], None)
            and run_command(["apt-get", "install", "-y", "-qq", "wrk"], None)
        )
        return None if ok else "apt-get could not install wrk (as root?)"
    if tool == "pouchdb-server":
        if not shutil.which("npm"):
            return "npm is missing: pouchdb-server cannot be installed"
        where = pouchdb_bin().parents[2]
        where.mkdir(parents=True, exist_ok=True)
        cmd = ["npm", "install", "--no-audit", "--no-fund", "--loglevel=error",
               f"pouchdb-server@{POUCHDB_VERSION}"]  # fmt: skip
        if not run_command(cmd, where):
            return "npm could not install pouchdb-server"
        (where / ".version").write_text(POUCHDB_VERSION)
        return None
    if tool == "kinto":
        venv = kinto_venv()
        venv.parent.mkdir(parents=True, exist_ok=True)
        base = getattr(sys, "_base_executable", sys.executable)
        if not (venv / "bin" / "python").exists() and not run_command(
            [base, "-m", "venv", str(venv)], None
        ):
            return "could not create the Kinto virtualenv"
        pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", *KINTO_PINS]
        if not run_command(pip, None):
            return "pip could not install Kinto"
        (venv.parent / ".version").write_text(" ".join(KINTO_PINS))
        return None
    raise ValueError(f"unknown tool {tool!r}")


def prepare(sections: Iterable[str]) -> dict[str, str]:
    """Install what the chosen sections need and is missing; tool -> why it is missing."""
    problems: dict[str, str] = {}
    for tool in needed(sections):
        if installed(tool):
            continue
        print(f"[setup] installing {tool} (once; a few minutes)", flush=True)
        why = install(tool)
        if why is not None:
            problems[tool] = why
            print(f"[setup] {why}: the sections that need it will skip it", flush=True)
    return problems
