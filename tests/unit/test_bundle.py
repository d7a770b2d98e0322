"""What ``sam build`` packages: runtime code in each function, dependencies in one
layer, and nothing of tests/, docs/, devtools/, benchmarks/ (scripts/lambda_bundle.py)."""

from __future__ import annotations

import importlib.util
import platform
import subprocess
import sys
import tomllib
from pathlib import Path
from types import ModuleType
from typing import Any

from tests.unit.test_template import _template

ROOT = Path(__file__).resolve().parents[2]
DEV_ONLY = ("tests", "docs", "devtools", "benchmarks", "events", "scripts", "var", ".venv")


def _bundle() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "lambda_bundle", ROOT / "scripts/lambda_bundle.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["lambda_bundle"] = module
    spec.loader.exec_module(module)
    return module


def _functions() -> dict[str, Any]:
    return {
        name: r
        for name, r in _template()["Resources"].items()
        if r["Type"] == "AWS::Serverless::Function"
    }


def test_every_function_is_built_by_the_makefile_with_the_deps_layer() -> None:
    template = _template()
    assert {"Ref": "DepsLayer"} in template["Globals"]["Function"]["Layers"]
    layer = template["Resources"]["DepsLayer"]
    assert layer["Type"] == "AWS::Serverless::LayerVersion"
    assert layer["Metadata"]["BuildMethod"] == "makefile"
    assert len(_functions()) >= 7
    inline = {n for n, f in _functions().items() if f["Properties"].get("InlineCode")}
    # the Cognito trigger is a few lines of stdlib Python, inline in the template
    assert inline <= {"TokenClaimsFunction"}
    for name, function in _functions().items():
        if name in inline:
            continue
        assert function.get("Metadata", {}).get("BuildMethod") == "makefile", name
        assert "Layers" not in function["Properties"], name  # the Globals' layer applies
    # sam would copy the whole tree (.venv, var/) before running make otherwise
    config = tomllib.loads((ROOT / "samconfig.toml").read_text())
    assert config["default"]["build"]["parameters"]["build_in_source"] is True


def _make_dry_run(target: str) -> str:
    result = subprocess.run(
        ["make", "-n", "-f", str(ROOT / "Makefile"), target, "ARTIFACTS_DIR=/artifacts"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_the_makefile_stages_code_per_function_and_dependencies_per_layer() -> None:
    for name in _functions():
        assert 'lambda_bundle.py code "/artifacts"' in _make_dry_run(f"build-{name}"), name
    layer = _make_dry_run("build-DepsLayer")
    assert "lambda_bundle.py deps" in layer and '"/artifacts/python"' in layer


def test_staged_code_is_runtime_code_only(tmp_path: Path) -> None:
    bundle = _bundle()
    assert bundle.CODE == ("app.py", "chalicelib", "functions")
    bundle.stage_code(tmp_path)
    staged = {p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if p.is_file()}
    assert {p.split("/")[0] for p in staged} == {"app.py", "chalicelib", "functions"}
    assert not [p for p in staged if p.split("/")[0] in DEV_ONLY or "__pycache__" in p]
    assert "chalicelib/cli.py" not in staged  # the dev CLI's alias
    for function in _functions().values():  # every handler's module is there
        if function["Properties"].get("InlineCode"):
            continue  # the Cognito trigger: its code is in the template
        module = function["Properties"]["Handler"].rpartition(".")[0]
        assert module.replace(".", "/") + ".py" in staged, module
    migrations = {
        p for p in staged if p.startswith("chalicelib/migrations/") and p.endswith(".sql")
    }
    assert migrations == {
        p.relative_to(ROOT).as_posix() for p in (ROOT / "chalicelib/migrations").glob("*.sql")
    }


def test_the_dependency_closure_leaves_out_grpc_and_chalices_cli() -> None:
    """The pruning rule, run against this .venv (it has every runtime package)."""
    bundle = _bundle()
    site = Path(importlib.util.find_spec("chalice").origin).parents[1]  # type: ignore[arg-type,union-attr]
    roots = bundle._requirements(ROOT / "requirements.txt")
    env = bundle._marker_env(platform.machine(), platform.python_version())
    keep = bundle.runtime_closure(site, roots, env)
    assert {"opensearch-py", "psycopg", "psycopg-binary", "cryptography", "chalice"} <= keep
    assert {"requests", "urllib3", "certifi", "python-dateutil"} <= keep  # opensearch-py's
    left_out = {"grpcio", "protobuf", "opensearch-protobufs", "click", "pip", "setuptools"}
    assert not keep & left_out
    assert not keep & {"pytest", "moto", "mypy", "ruff", "osmem-server"}  # dev only


def test_the_code_ships_bytecode_the_runtime_imports_without_the_source(tmp_path: Path) -> None:
    """Every module of the bundle has a .pyc of the runtime's Python (3.13), hash-based
    and unchecked: Lambda imports it as it is, never compiling at cold start."""
    import pytest

    bundle = _bundle()
    python = bundle.runtime_python()
    if python is None:
        pytest.skip("no python3.13 on this machine: the build warns and ships source only")
    assert bundle.main(["code", str(tmp_path)]) == 0
    magic = subprocess.run(
        [python, "-c", "import importlib.util, sys; sys.stdout.write(importlib.util.MAGIC_NUMBER.hex())"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    sources = sorted(tmp_path.rglob("*.py"))
    assert len(sources) > 50
    for source in sources:
        cached = source.parent / "__pycache__" / f"{source.stem}.cpython-313.pyc"
        assert cached.is_file(), source
        header = cached.read_bytes()[:8]
        assert header[:4].hex() == magic, source
        assert int.from_bytes(header[4:8], "little") == 0b01, source  # hash-based, unchecked
    # the recorded file names are the deployed ones (tracebacks in CloudWatch)
    code = subprocess.run(
        [python, "-c", "import marshal, sys; c = marshal.loads(open(sys.argv[1], 'rb').read()[16:]); print(c.co_filename)",
         str(tmp_path / "functions/__pycache__/migrate.cpython-313.pyc")],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    assert code == "/var/task/functions/migrate.py"


def test_without_the_runtimes_python_the_build_says_so(tmp_path: Path, capsys: Any) -> None:
    bundle = _bundle()
    assert bundle.compile_bytecode(tmp_path, "/var/task", None) is False
    assert "ships source only" in capsys.readouterr().err
