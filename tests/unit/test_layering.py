"""The Lambda code never imports the dev tools; ``chalicelib.cli`` is a lazy alias."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _imports(tree: ast.AST) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def _runtime_sources() -> list[Path]:
    files = [ROOT / "app.py", *sorted((ROOT / "functions").rglob("*.py"))]
    files += [p for p in sorted((ROOT / "chalicelib").rglob("*.py")) if p.name != "cli.py"]
    return files


def test_runtime_code_never_imports_devtools_tests_or_benchmarks() -> None:
    offenders = {}
    for path in _runtime_sources():
        bad = {
            name
            for name in _imports(ast.parse(path.read_text(), str(path)))
            if name.split(".")[0] in {"devtools", "tests", "benchmarks"}
        }
        if bad:
            offenders[str(path.relative_to(ROOT))] = sorted(bad)
    assert not offenders
    assert not (ROOT / "chalicelib" / "local").exists()


def test_chalicelib_cli_imports_devtools_only_when_run() -> None:
    tree = ast.parse((ROOT / "chalicelib" / "cli.py").read_text())
    module_level = [n for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))]
    top_level = _imports(ast.Module(body=module_level, type_ignores=[]))
    assert not {n for n in top_level if n.startswith("devtools")}
    assert "devtools.cli" in _imports(tree)


def test_the_old_command_name_still_works() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "chalicelib.cli", "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    for command in ("serve", "token", "migrate", "reindex", "sync", "dead-letters"):
        assert command in result.stdout
