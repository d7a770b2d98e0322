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
ANY_METHOD = "x-amazon-apigateway-any-method"


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
    declared = {
        (path, method.upper())
        for path, ops in paths.items()
        for method in ops
        if method != ANY_METHOD
    }
    assert declared == served
    # every path also routes other methods to the app, which answers 405 with Allow
    assert all(ANY_METHOD in ops for ops in paths.values())
    for path, ops in paths.items():
        for method, op in ops.items():
            integration = op["x-amazon-apigateway-integration"]
            assert integration["type"] == "aws_proxy"
            assert integration["httpMethod"] == "POST"  # Lambda is always invoked with POST
            # the alias CodeDeploy moves, never $LATEST or a fixed version
            assert "/functions/${ApiFunction.Alias}/invocations" in integration["uri"]["Sub"], (
                path,
                method,
            )
            secured = bool(op.get("security"))
            public = (
                path in {p for p, _ in PUBLIC}
                if method == ANY_METHOD
                else ((path, method.upper()) in PUBLIC)
            )
            assert secured == (not public), (path, method)


def test_functions_point_at_real_handlers() -> None:
    import importlib

    resources = _template()["Resources"]
    handlers = [
        r["Properties"]["Handler"]
        for r in resources.values()
        if r["Type"] == "AWS::Serverless::Function"
    ]
    assert "app.handler" in handlers
    assert {
        "functions.sync_search.handler",
        "functions.sync_search.sweep_handler",
        "functions.sync_search.reindex_handler",
    } <= set(handlers)
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


def test_every_gateway_response_has_every_header_the_app_sets() -> None:
    """A gateway response type defined in the template does not inherit DEFAULT_4XX/5XX's
    parameters: each must carry what the app's own answers carry (the edge middleware)."""
    from chalicelib.http import SECURITY_HEADERS

    body = _template()["Resources"]["Api"]["Properties"]["DefinitionBody"]
    responses = body["x-amazon-apigateway-gateway-responses"]
    assert {"DEFAULT_4XX", "DEFAULT_5XX"} <= set(responses)
    expected = {
        **SECURITY_HEADERS,
        "Cache-Control": "no-store",
        "Content-Type": "application/problem+json",
    }
    for kind, response in responses.items():
        params = response["responseParameters"]
        static = {
            name.removeprefix("gatewayresponse.header."): value[1:-1]
            for name, value in params.items()
            if value.startswith("'") and value.endswith("'")  # a literal, not a mapping
        }
        for name, value in expected.items():
            assert static.get(name) == value, (kind, name, params)
        assert params["gatewayresponse.header.X-Request-Id"] == "context.requestId", kind
        assert "application/json" in response["responseTemplates"], kind


def test_functions_get_the_aws_settings() -> None:
    template = _template()
    env = template["Globals"]["Function"]["Environment"]["Variables"]
    assert env["POWERTOOLS_SERVICE_NAME"] == "docs"
    assert env["POWERTOOLS_METRICS_NAMESPACE"] == "DocsService"
    assert env["DOCS_TRUST_AUTHORIZER_CLAIMS"] == "true"
    assert env["DOCS_DB_IAM_AUTH"] == "true"
    assert env["DOCS_DB_SSLMODE"] == "verify-full"  # the proxy's certificate is checked
    # every function connects as the runtime login; only MigrateFunction has an owner URL
    assert "DATABASE_URL" not in env
    runtime = env["DOCS_DB_RUNTIME_URL"]["Sub"]
    assert "${DbProxyEndpoint}" in runtime and "${DbUser}@" in runtime
    assert env["REDIS_URL"] == {"Ref": "RedisUrl"}
    function = template["Globals"]["Function"]
    assert function["Tracing"] == "Active"
    assert function["Architectures"] == ["arm64"]
    api = template["Resources"]["Api"]["Properties"]
    assert api["TracingEnabled"] is True
    assert api["AccessLogSetting"]["DestinationArn"]
    assert api["MethodSettings"][0]["ThrottlingRateLimit"] > 0
    assert "ApiUrl" in template["Outputs"]


def test_only_the_migrate_function_connects_as_the_migration_login() -> None:
    """Two IAM logins (docs/database-roles.md): the migration login is MigrateFunction's
    alone; every other function may connect as the runtime login only."""
    template = _template()
    functions = [
        name
        for name, r in template["Resources"].items()
        if r["Type"] == "AWS::Serverless::Function"
    ]
    for name in functions:
        users = {
            s["Resource"]["Sub"].rsplit("/", 1)[1]
            for s in _statements(template, name)
            if "rds-db:connect" in _actions(s)
        }
        env = _env(template, name)
        if name == "MigrateFunction":
            assert users == {"${DbMigrationUser}"}
            assert "${DbMigrationUser}@${DbProxyEndpoint}" in env["DATABASE_URL"]["Sub"]
        else:
            assert users <= {"${DbUser}"}, name
            assert "DATABASE_URL" not in env, name
        assert "${DbUser}@" in env["DOCS_DB_RUNTIME_URL"]["Sub"], name
    params = template["Parameters"]
    assert params["DbUser"]["Default"] != params["DbMigrationUser"]["Default"]


# ------------------------------------------------------------------ search sync
SEARCH_FUNCTIONS = ("SyncSearchFunction", "SearchSweepFunction", "ReindexFunction")


def _function(template: dict[str, Any], name: str) -> dict[str, Any]:
    resource = template["Resources"][name]
    assert resource["Type"] == "AWS::Serverless::Function", name
    props: dict[str, Any] = resource["Properties"]
    return props


def _setting(template: dict[str, Any], name: str, key: str) -> Any:
    """A function property as deployed: its own, else the Globals'."""
    return _function(template, name).get(key, template["Globals"]["Function"].get(key))


def _env(template: dict[str, Any], name: str) -> dict[str, Any]:
    """A function's environment as deployed: Globals merged with its own."""
    env = dict(template["Globals"]["Function"]["Environment"]["Variables"])
    env.update(_function(template, name).get("Environment", {}).get("Variables", {}))
    return env


def _statements(template: dict[str, Any], name: str) -> list[dict[str, Any]]:
    return [s for p in _function(template, name).get("Policies", []) for s in p["Statement"]]


def _actions(statement: dict[str, Any]) -> set[str]:
    action = statement["Action"]
    return {action} if isinstance(action, str) else set(action)


def _settings_of(template: dict[str, Any], name: str, monkeypatch: pytest.MonkeyPatch) -> Any:
    """What chalicelib.config reads from the function's environment (intrinsics → placeholders)."""
    import chalicelib.secrets
    from chalicelib.config import Settings

    for key, value in _env(template, name).items():
        monkeypatch.setenv(key, value if isinstance(value, str) else f"https://{key.lower()}.test")
    # a secret named by ARN is read at start-up: stand in for Secrets Manager
    monkeypatch.setattr(chalicelib.secrets, "get_secret", lambda arn, **_: f"secret-of-{arn}")
    return Settings()


def test_search_nudge_queue_is_fifo_with_a_fifo_dlq() -> None:
    template = _template()
    resources = template["Resources"]
    queue = resources["SearchNudgeQueue"]["Properties"]
    assert queue["FifoQueue"] is True
    assert queue["ContentBasedDeduplication"] is False  # the sender sets the dedup id
    assert queue["SqsManagedSseEnabled"] is True
    redrive = queue["RedrivePolicy"]
    assert redrive["deadLetterTargetArn"] == {"GetAtt": "SearchNudgeDLQ.Arn"}
    assert redrive["maxReceiveCount"] == 5
    dlq = resources["SearchNudgeDLQ"]
    assert dlq["Type"] == "AWS::SQS::Queue"
    assert dlq["Properties"]["FifoQueue"] is True
    assert dlq["Properties"]["SqsManagedSseEnabled"] is True
    assert queue["VisibilityTimeout"] >= 6 * _setting(template, "SyncSearchFunction", "Timeout")
    alarm = resources["SearchNudgeDLQAlarm"]["Properties"]
    assert alarm["Namespace"] == "AWS/SQS"
    assert alarm["MetricName"] == "ApproximateNumberOfMessagesVisible"
    assert alarm["Dimensions"] == [
        {"Name": "QueueName", "Value": {"GetAtt": "SearchNudgeDLQ.QueueName"}}
    ]
    assert (alarm["Threshold"], alarm["ComparisonOperator"]) == (0, "GreaterThanThreshold")


def test_sync_function_reports_batch_item_failures() -> None:
    template = _template()
    events = _function(template, "SyncSearchFunction")["Events"]
    sqs = [e["Properties"] for e in events.values() if e["Type"] == "SQS"]
    assert len(sqs) == 1
    assert sqs[0]["Queue"] == {"GetAtt": "SearchNudgeQueue.Arn"}
    assert sqs[0]["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert 1 <= sqs[0]["BatchSize"] <= 10  # the FIFO event source maximum


def test_sweep_runs_every_minute_one_at_a_time() -> None:
    from functions.sync_search import SWEEP_RESERVE_S

    template = _template()
    sweep = _function(template, "SearchSweepFunction")
    schedules = [e["Properties"] for e in sweep["Events"].values() if e["Type"] == "Schedule"]
    assert [s["Schedule"] for s in schedules] == ["rate(1 minute)"]
    assert sweep["ReservedConcurrentExecutions"] == 1
    # the handler keeps SWEEP_RESERVE_S of the timeout back: some must be left to drain
    assert _setting(template, "SearchSweepFunction", "Timeout") >= SWEEP_RESERVE_S + 30
    assert "Events" not in _function(template, "ReindexFunction")  # invoked by hand
    assert _setting(template, "ReindexFunction", "Timeout") == 900


def test_api_nudges_the_search_sync_through_sqs(monkeypatch: pytest.MonkeyPatch) -> None:
    template = _template()
    env = _env(template, "ApiFunction")
    assert env["DOCS_SEARCH_NUDGE"] == "sqs"
    assert env["DOCS_SEARCH_NUDGE_QUEUE_URL"] == {"Ref": "SearchNudgeQueue"}
    sends = [s for s in _statements(template, "ApiFunction") if "sqs:SendMessage" in _actions(s)]
    assert [s["Resource"] for s in sends] == [{"GetAtt": "SearchNudgeQueue.Arn"}]
    settings = _settings_of(template, "ApiFunction", monkeypatch)  # names the app really reads
    assert settings.search_nudge == "sqs"
    assert settings.search_nudge_queue_url


@pytest.mark.parametrize("name", ["ApiFunction", *SEARCH_FUNCTIONS])
def test_search_functions_reach_opensearch_signed(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    template = _template()
    env = _env(template, name)
    assert env["OPENSEARCH_URL"] == {"Ref": "OpenSearchUrl"}
    settings = _settings_of(template, name, monkeypatch)
    assert settings.opensearch_url
    assert settings.opensearch_sigv4 is True
    assert settings.db_iam_auth is True
    es = [s for s in _statements(template, name) if any(a.startswith("es:") for a in _actions(s))]
    assert [s["Resource"] for s in es] == [{"Sub": "${OpenSearchDomainArn}/*"}]
    actions = _actions(es[0])
    assert {"es:ESHttpGet", "es:ESHttpHead", "es:ESHttpPost"} <= actions
    writes = {"es:ESHttpPut", "es:ESHttpDelete"}
    assert (writes <= actions) if name != "ApiFunction" else not (writes & actions), name
    assert any("rds-db:connect" in _actions(s) for s in _statements(template, name)), (
        name
    )  # they read the outbox through RDS Proxy


def test_search_parameters_accept_a_domain_and_reject_plain_http() -> None:
    import re

    params = _template()["Parameters"]
    url = re.compile(params["OpenSearchUrl"]["AllowedPattern"])
    assert url.fullmatch("https://vpc-docs-abc123.us-east-1.es.amazonaws.com")
    assert not url.fullmatch("http://vpc-docs-abc123.us-east-1.es.amazonaws.com")
    arn = re.compile(params["OpenSearchDomainArn"]["AllowedPattern"])
    assert arn.fullmatch("arn:aws:es:us-east-1:123456789012:domain/docs")
    assert not arn.fullmatch("arn:aws:es:us-east-1:123456789012:domain/docs/*")


def test_sync_lag_is_alarmed_on_the_metric_the_sweep_emits() -> None:
    template = _template()
    alarm = template["Resources"]["SearchSyncLagAlarm"]["Properties"]
    source = (ROOT / "chalicelib" / "service_layer" / "search.py").read_text()
    assert f'milliseconds("{alarm["MetricName"]}"' in source
    # Powertools EMF: namespace and the "service" dimension come from the emitter's env
    sweep_env = _env(template, "SearchSweepFunction")
    assert alarm["Namespace"] == sweep_env["POWERTOOLS_METRICS_NAMESPACE"]
    assert alarm["Dimensions"] == [
        {"Name": "service", "Value": sweep_env["POWERTOOLS_SERVICE_NAME"]}
    ]
    assert alarm["Unit"] == "Milliseconds"
    assert (alarm["Threshold"], alarm["ComparisonOperator"]) == (60000, "GreaterThanThreshold")
    assert alarm["Period"] * alarm["EvaluationPeriods"] == 300


def test_search_functions_have_log_groups_and_outputs() -> None:
    template = _template()
    groups = {
        r["Properties"]["LogGroupName"]["Sub"]: r["Properties"]
        for r in template["Resources"].values()
        if r["Type"] == "AWS::Logs::LogGroup" and "LogGroupName" in r["Properties"]
    }
    for name in SEARCH_FUNCTIONS:
        assert groups[f"/aws/lambda/${{{name}}}"]["RetentionInDays"] == 30, name
    outputs = template["Outputs"]
    assert outputs["SearchNudgeQueueUrl"]["Value"] == {"Ref": "SearchNudgeQueue"}
    assert outputs["ReindexFunctionName"]["Value"] == {"Ref": "ReindexFunction"}


def test_stale_uploads_are_expired_on_a_schedule() -> None:
    template = _template()
    fn = _function(template, "ExpireUploadsFunction")
    assert fn["Handler"] == "functions.process_upload.expire_handler"
    schedules = [
        e["Properties"]["Schedule"] for e in fn["Events"].values() if e["Type"] == "Schedule"
    ]
    assert schedules == ["rate(15 minutes)"]
    # HEAD of a missing object is a 404 only with ListBucket (a 403 otherwise)
    listing = [
        s for s in _statements(template, "ExpireUploadsFunction") if "s3:ListBucket" in _actions(s)
    ]
    assert [s["Resource"] for s in listing] == [{"GetAtt": "ContentBucket.Arn"}]


def test_search_indexes_get_a_replica_wherever_they_can_be_created() -> None:
    template = _template()
    for name in ("SyncSearchFunction", "SearchSweepFunction", "ReindexFunction"):
        assert _env(template, name)["DOCS_SEARCH_REPLICAS"] == "1", name
