"""template.yaml: valid CloudFormation, and API Gateway knows exactly the app's routes."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
PUBLIC = {("/health", "GET"), ("/openapi.json", "GET")}


class _CfnLoader(yaml.SafeLoader):
    """Reads CloudFormation short-form tags (!Ref, !Sub …) as plain values."""


def _tag(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> Any:
    if isinstance(node, yaml.ScalarNode):
        return {suffix: loader.construct_scalar(node)}
    if isinstance(node, yaml.SequenceNode):
        return {suffix: loader.construct_sequence(node)}
    return {suffix: loader.construct_mapping(node)}  # type: ignore[arg-type]


_CfnLoader.add_multi_constructor("!", _tag)


def _template() -> dict[str, Any]:
    return yaml.load((ROOT / "template.yaml").read_text(), Loader=_CfnLoader)


def test_api_routes_are_exactly_the_apps_routes() -> None:
    import app

    served = {(path, method) for path, methods in app.app.routes.items() for method in methods}
    paths = _template()["Resources"]["Api"]["Properties"]["DefinitionBody"]["paths"]
    declared = {(path, method.upper()) for path, ops in paths.items() for method in ops}
    assert declared == served
    for path, ops in paths.items():
        for method, op in ops.items():
            assert op["x-amazon-apigateway-integration"]["type"] == "aws_proxy"
            secured = bool(op.get("security"))
            assert secured == ((path, method.upper()) not in PUBLIC), (path, method)


def test_functions_point_at_real_handlers() -> None:
    import importlib

    resources = _template()["Resources"]
    handlers = [
        r["Properties"]["Handler"]
        for r in resources.values()
        if r["Type"] == "AWS::Serverless::Function"
    ]
    assert "app.handler" in handlers
    for handler in handlers:
        module, _, name = handler.rpartition(".")
        assert callable(getattr(importlib.import_module(module), name)), handler


def test_cfn_lint_finds_no_errors() -> None:
    exe = shutil.which("cfn-lint", path=str(Path(sys.executable).parent)) or shutil.which(
        "cfn-lint"
    )
    if exe is None:
        pytest.skip("cfn-lint is not installed")
    result = subprocess.run(
        [exe, str(ROOT / "template.yaml")], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
