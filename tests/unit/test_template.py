"""template.yaml: valid CloudFormation, and API Gateway knows exactly the app's routes."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
PUBLIC = {("/health", "GET"), ("/openapi.json", "GET")}


class _CfnLoader(yaml.SafeLoader):  # type: ignore[misc]
    """Reads CloudFormation short-form tags (!Ref, !Sub …) as plain values."""


def _tag(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> Any:
    if isinstance(node, yaml.ScalarNode):
        return {suffix: loader.construct_scalar(node)}
    if isinstance(node, yaml.SequenceNode):
        return {suffix: loader.construct_sequence(node)}
    return {suffix: loader.construct_mapping(node)}  # type: ignore[arg-type]


_CfnLoader.add_multi_constructor("!", _tag)


def _template() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.load((ROOT / "template.yaml").read_text(), Loader=_CfnLoader)
    return loaded


def test_api_routes_are_exactly_the_apps_routes() -> None:
    import app

    served = {(path, method) for path, methods in app.app.routes.items() for method in methods}
    paths = _template()["Resources"]["Api"]["Properties"]["DefinitionBody"]["paths"]
    declared = {(path, method.upper()) for path, ops in paths.items() for method in ops}
    assert declared == served
    for path, ops in paths.items():
        for method, op in ops.items():
            integration = op["x-amazon-apigateway-integration"]
            assert integration["type"] == "aws_proxy"
            assert integration["httpMethod"] == "POST"  # Lambda is always invoked with POST
            assert "${ApiFunction.Arn}" in integration["uri"]["Sub"], (path, method)
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


def test_gateway_own_errors_are_problem_json() -> None:
    """Authorizer rejections, unknown paths and throttling never reach the app: API
    Gateway answers them itself, so they must have the API's problem+json shape."""
    body = _template()["Resources"]["Api"]["Properties"]["DefinitionBody"]
    responses = body["x-amazon-apigateway-gateway-responses"]
    for kind in ("UNAUTHORIZED", "ACCESS_DENIED", "MISSING_AUTHENTICATION_TOKEN", "THROTTLED",
                 "DEFAULT_4XX", "DEFAULT_5XX"):  # fmt: skip
        response = responses[kind]
        headers = response["responseParameters"]
        assert headers["gatewayresponse.header.Content-Type"] == "'application/problem+json'"
        template = response["responseTemplates"]["application/json"]
        sample = template.replace("$context.error.messageString", '"message"').replace(
            "$context.requestId", "rid"
        )
        problem = json.loads(sample)
        assert {"type", "title", "detail", "instance"} <= set(problem), kind
        if "statusCode" in response:
            assert problem["status"] == int(response["statusCode"]), kind
    assert responses["MISSING_AUTHENTICATION_TOKEN"]["statusCode"] == "404"  # as the app answers


def test_functions_get_the_aws_settings() -> None:
    template = _template()
    env = template["Globals"]["Function"]["Environment"]["Variables"]
    assert env["POWERTOOLS_SERVICE_NAME"] == "docs"
    assert env["POWERTOOLS_METRICS_NAMESPACE"] == "DocsService"
    assert env["DOCS_TRUST_AUTHORIZER_CLAIMS"] == "true"
    assert env["DOCS_DB_IAM_AUTH"] == "true"
    assert env["DOCS_DB_SSLMODE"] == "require"
    assert "${DbProxyEndpoint}" in env["DATABASE_URL"]["Sub"]
    assert env["REDIS_URL"] == {"Ref": "RedisUrl"}
    function = template["Globals"]["Function"]
    assert function["Tracing"] == "Active"
    assert function["Architectures"] == ["arm64"]
    api = template["Resources"]["Api"]["Properties"]
    assert api["TracingEnabled"] is True
    assert api["AccessLogSetting"]["DestinationArn"]
    assert api["MethodSettings"][0]["ThrottlingRateLimit"] > 0
    assert "ApiUrl" in template["Outputs"]
