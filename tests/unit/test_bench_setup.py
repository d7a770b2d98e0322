"""The benchmark command installs only what the chosen sections need."""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from benchmarks import peers, report, run

ROOT = Path(__file__).resolve().parents[2]


def _fake(path: Path, log: Path) -> None:
    """An executable that records its name and arguments, and succeeds."""
    path.write_text(f'#!/bin/sh\necho "$(basename "$0") $*" >> "{log}"\n')
    path.chmod(path.stat().st_mode | stat.S_IEXEC)


def test_bench_sh_installs_no_peer_for_the_handlers_section(tmp_path: Path) -> None:
    """bench.sh itself installs no peer and no wrk: `--only handlers` runs with none."""
    scripts = tmp_path / "scripts"
    scripts.mkdir()
    for name in ("bench.sh", "_venv.sh"):
        shutil.copy(ROOT / "scripts" / name, scripts / name)
    calls = tmp_path / "calls.log"
    venv_bin = tmp_path / ".venv" / "bin"
    venv_bin.mkdir(parents=True)
    _fake(venv_bin / "python", calls)
    for name in ("requirements.txt", "requirements-dev.txt", "requirements-bench.txt"):
        (tmp_path / name).write_text("")
    empty = hashlib.sha256(b"").hexdigest()
    (tmp_path / ".venv" / ".requirements.sha256").write_text(empty + "\n")
    (tmp_path / ".venv" / ".requirements-bench.sha256").write_text(empty + "\n")
    tools = tmp_path / "bin"
    tools.mkdir()
    for name in ("npm", "apt-get", "pip", "pip3"):  # wrk is left missing on purpose
        _fake(tools / name, calls)
    python3 = shutil.which("python3")
    assert python3
    os.symlink(python3, tools / "python3")
    env = {"PATH": f"{tools}:/usr/bin:/bin", "HOME": str(tmp_path)}
    done = subprocess.run(
        ["bash", str(scripts / "bench.sh"), "--only", "handlers"],
        env=env, capture_output=True, text=True, check=False, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert calls.read_text().splitlines() == ["python -m benchmarks.run --only handlers"]


@pytest.fixture
def recorded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    """run.main on fake sections, with nothing installed and installs recorded."""
    commands: list[list[str]] = []

    def record(cmd: list[str], cwd: Path | None) -> bool:
        commands.append(cmd)
        return True

    def measure(quick: bool, res: report.Results) -> None:
        res.add([report.Figure("handlers", "x", 1.0, "ms", "y", 1.0)])

    monkeypatch.setattr(run, "ROOT", tmp_path)
    monkeypatch.setattr(peers, "ROOT", tmp_path)
    monkeypatch.setattr(peers, "run_command", record)
    monkeypatch.setattr(peers.shutil, "which", lambda name: f"/usr/bin/{name}")
    monkeypatch.setattr(peers, "installed", lambda tool: False)
    monkeypatch.setattr(run, "SECTIONS", {"handlers": ("fake", measure), "http": ("fake", measure)})
    return commands


def test_only_handlers_installs_nothing(recorded: list[list[str]]) -> None:
    assert run.main(["--only", "handlers"]) == 0
    assert recorded == []


def test_the_http_section_installs_wrk_and_both_peers(recorded: list[list[str]]) -> None:
    assert run.main(["--only", "http"]) == 0
    text = [" ".join(cmd) for cmd in recorded]
    assert text[0] == "apt-get install -y -qq wrk"
    assert any(f"pouchdb-server@{peers.POUCHDB_VERSION}" in t for t in text)
    pip = next(cmd for cmd in recorded if "pip" in cmd)
    assert pip[0] == str(peers.kinto_venv() / "bin" / "python")  # its own virtualenv
    assert f"kinto[postgresql]=={peers.KINTO_VERSION}" in pip
    assert not any(".venv" in part for cmd in recorded for part in cmd)


def test_needed_follows_the_sections() -> None:
    assert peers.needed(["handlers", "mix", "bundle"]) == []
    assert peers.needed(["handlers", "http"]) == ["wrk", "pouchdb-server", "kinto"]
    assert peers.needed(["http", "http"]) == ["wrk", "pouchdb-server", "kinto"]


def test_an_installed_peer_is_not_installed_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(peers, "ROOT", tmp_path)
    assert not peers.installed("kinto")
    gunicorn = peers.kinto_venv() / "bin" / "gunicorn"
    gunicorn.parent.mkdir(parents=True)
    gunicorn.write_text("")
    assert not peers.installed("kinto")  # no stamp: another version, maybe
    (peers.kinto_venv().parent / ".version").write_text(" ".join(peers.KINTO_PINS))
    assert peers.installed("kinto")
