"""template.yaml: valid CloudFormation, and API Gateway knows exactly the app's routes."""

from __future__ import annotations

import copy
import functools
import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
PUBLIC = {("/health", "GET"), ("/openapi.json", "GET")}
# one at a time, unless the account is too small to reserve concurrency (ReserveConcurrency)
RESERVED_ONE = {"If": ["ReserveConcurrencyOn", 1, {"Ref": "AWS::NoValue"}]}
ANY_METHOD = "x-amazon-apigateway-any-method"


class _CfnLoader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # type: ignore[misc]
    """Reads CloudFormation short-form tags (!Ref, !Sub …) as plain values (libyaml's
    parser when PyYAML has it: the template is large)."""


def _tag(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> Any:
    if isinstance(node, yaml.ScalarNode):
        return {suffix: loader.construct_scalar(node)}
    if isinstance(node, yaml.SequenceNode):
        return {suffix: loader.construct_sequence(node)}
    return {suffix: loader.construct_mapping(node)}  # type: ignore[arg-type]


_CfnLoader.add_multi_constructor("!", _tag)


@functools.cache
def _parsed(text: str) -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.load(text, Loader=_CfnLoader)
    return loaded


def _template() -> dict[str, Any]:
    """The template as it is on disk now, parsed once per content; each caller gets its
    own copy to read or change."""
    return copy.deepcopy(_parsed((ROOT / "template.yaml").read_text()))


def _if(value: Any, condition: str) -> tuple[Any, Any]:
    """The two branches of ``!If [condition, created, given]`` (the data tier's choice)."""
    assert isinstance(value, dict) and set(value) == {"If"}, value
    name, created, given = value["If"]
    assert name == condition, value
    return created, given


def _sub(value: Any) -> str:
    """The text of a ``!Sub`` (short form, or the list form with variables)."""
    sub = value["Sub"]
    return sub if isinstance(sub, str) else str(sub[0])


def test_api_routes_are_exactly_the_apps_routes() -> None:
    import app

    served = {(path, method) for path, methods in app.app.routes.items() for method in methods}
    paths = _template()["Resources"]["Api"]["Properties"]["DefinitionBody"]["paths"]
    declared = {
        (path, method.upper())
        for path, ops in paths.items()
        for method in ops
        if method not in (ANY_METHOD, "options")
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
                else method == "options" or ((path, method.upper()) in PUBLIC)
            )
            assert secured == (not public), (path, method)


def test_the_app_and_the_api_declare_the_same_binary_media_types() -> None:
    """Chalice matches every request's and response's content type against the
    app's binary types; the app keeps the API's (none), not Chalice's default 16."""
    import app

    body = _template()["Resources"]["Api"]["Properties"]["DefinitionBody"]
    assert body["x-amazon-apigateway-binary-media-types"] == app.app.api.binary_types


def test_functions_point_at_real_handlers() -> None:
    import importlib

    resources = _template()["Resources"]
    handlers = [
        r["Properties"]["Handler"]
        for r in resources.values()
        if r["Type"] == "AWS::Serverless::Function" and "InlineCode" not in r["Properties"]
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
    from chalicelib.api.http import SECURITY_HEADERS

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
            # a literal, not a mapping (nor a condition)
            if isinstance(value, str) and value.startswith("'") and value.endswith("'")
        }
        for name, value in expected.items():
            assert static.get(name) == value, (kind, name, params)
        assert params["gatewayresponse.header.X-Request-Id"] == "context.requestId", kind
        assert "application/json" in response["responseTemplates"], kind


def test_browsers_preflight_without_a_token_on_every_path() -> None:
    """OPTIONS reaches the app (which answers from the allowlist) on every path, without
    the authorizer: a browser's preflight carries no token."""
    paths = _template()["Resources"]["Api"]["Properties"]["DefinitionBody"]["paths"]
    for path, ops in paths.items():
        assert "options" in ops, path
        assert not ops["options"].get("security"), path
        assert ops["options"]["x-amazon-apigateway-integration"]["type"] == "aws_proxy"


def test_cors_origins_parameter_reaches_every_function() -> None:
    template = _template()
    param = template["Parameters"]["CorsOrigins"]
    assert param["Default"] == ""  # none by default
    pattern = re.compile(param["AllowedPattern"])
    for good in ("", "https://app.example.com", "https://a.example.com,http://localhost:3000"):
        assert pattern.fullmatch(good), good
    for bad in ("*", "https://*.example.com", "app.example.com", "https://a.com, https://b.com"):
        assert not pattern.fullmatch(bad), bad
    env = template["Globals"]["Function"]["Environment"]["Variables"]
    assert env["DOCS_CORS_ORIGINS"] == {"Ref": "CorsOrigins"}
    assert template["Conditions"]["CorsOn"] == {"Not": [{"Equals": [{"Ref": "CorsOrigins"}, ""]}]}


def test_api_gateway_compresses_from_the_local_servers_threshold() -> None:
    from chalicelib.api.cors import COMPRESSION_MIN_BYTES

    api = _template()["Resources"]["Api"]["Properties"]
    assert api["MinimumCompressionSize"] == COMPRESSION_MIN_BYTES


def test_gateway_errors_carry_cors_headers_when_origins_are_set() -> None:
    from chalicelib.api.cors import EXPOSE_HEADERS

    body = _template()["Resources"]["Api"]["Properties"]["DefinitionBody"]
    no_value = {"Ref": "AWS::NoValue"}
    for kind, response in body["x-amazon-apigateway-gateway-responses"].items():
        params = response["responseParameters"]
        origin = params["gatewayresponse.header.Access-Control-Allow-Origin"]
        assert origin == {"If": ["CorsOn", "method.request.header.origin", no_value]}, kind
        expose = params["gatewayresponse.header.Access-Control-Expose-Headers"]
        assert expose == {"If": ["CorsOn", f"'{EXPOSE_HEADERS}'", no_value]}, kind
        assert params["gatewayresponse.header.Vary"] == {"If": ["CorsOn", "'Origin'", no_value]}


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
    created, given = _if(env["DOCS_DB_RUNTIME_URL"], "DatabaseOn")
    assert "${DbUser}@${DbProxy.Endpoint}:5432/" in created["Sub"]
    assert "${DbUser}@${DbProxyEndpoint}:5432/" in given["Sub"]
    created, given = _if(env["REDIS_URL"], "CacheOn")
    assert created["Sub"].startswith("rediss://")  # TLS
    assert given == {"Ref": "RedisUrl"}
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
            _sub(s["Resource"]).rsplit("/", 1)[1]
            for s in _statements(template, name)
            if "rds-db:connect" in _actions(s)
        }
        env = _env(template, name)
        if name == "MigrateFunction":
            assert users == {"${DbMigrationUser}"}
            created, given = _if(env["DATABASE_URL"], "DatabaseOn")
            assert "${DbMigrationUser}@${DbProxy.Endpoint}" in created["Sub"]
            assert "${DbMigrationUser}@${DbProxyEndpoint}" in given["Sub"]
        else:
            assert users <= {"${DbUser}"}, name
            assert "DATABASE_URL" not in env, name
        for url in _if(env["DOCS_DB_RUNTIME_URL"], "DatabaseOn"):
            assert "${DbUser}@" in url["Sub"], name
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
    policies = _function(template, name).get("Policies", [])
    # inline statements; managed policies attached by !If (CacheSecretReadPolicy) have none
    return [s for p in policies for s in p.get("Statement", [])]


def _actions(statement: dict[str, Any]) -> set[str]:
    action = statement["Action"]
    return {action} if isinstance(action, str) else set(action)


def _settings_of(template: dict[str, Any], name: str, monkeypatch: pytest.MonkeyPatch) -> Any:
    """What chalicelib.config reads from the function's environment (intrinsics → placeholders)."""
    import chalicelib.secrets
    from chalicelib.config import Settings

    for key, value in _env(template, name).items():
        placeholder = f"https://{key.lower()}.test"
        if key == "DOCS_MACHINE_CLIENTS":  # client_id=org pairs
            placeholder = "client-id-test=org-test"
        monkeypatch.setenv(key, value if isinstance(value, str) else placeholder)
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


def _sqs_sources(template: dict[str, Any], name: str) -> list[dict[str, Any]]:
    """The SQS event source mappings that invoke function ``name`` (through its alias)."""
    return [
        r["Properties"]
        for r in template["Resources"].values()
        if r["Type"] == "AWS::Lambda::EventSourceMapping"
        and r["Properties"]["FunctionName"] == {"Ref": f"{name}.Alias"}
    ]


def test_sync_function_reports_batch_item_failures() -> None:
    template = _template()
    sqs = _sqs_sources(template, "SyncSearchFunction")
    assert len(sqs) == 1
    assert sqs[0]["EventSourceArn"] == {"GetAtt": "SearchNudgeQueue.Arn"}
    assert sqs[0]["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert 1 <= sqs[0]["BatchSize"] <= 10  # the FIFO event source maximum


def test_sweep_runs_every_minute_one_at_a_time() -> None:
    from functions.sync_search import SWEEP_RESERVE_S

    template = _template()
    sweep = _function(template, "SearchSweepFunction")
    schedules = [e["Properties"] for e in sweep["Events"].values() if e["Type"] == "Schedule"]
    assert [s["Schedule"] for s in schedules] == ["rate(1 minute)"]
    assert sweep["ReservedConcurrentExecutions"] == RESERVED_ONE
    # the handler keeps SWEEP_RESERVE_S of the timeout back: some must be left to drain
    assert _setting(template, "SearchSweepFunction", "Timeout") >= SWEEP_RESERVE_S + 30
    assert "Events" not in _function(template, "ReindexFunction")  # invoked by hand
    assert _setting(template, "ReindexFunction", "Timeout") == 900


def test_api_nudges_the_search_sync_through_sqs(monkeypatch: pytest.MonkeyPatch) -> None:
    template = _template()
    env = _env(template, "ApiFunction")
    assert env["DOCS_SEARCH_NUDGE"] == "sqs"
    assert env["DOCS_SEARCH_NUDGE_QUEUE_URL"] == {"Ref": "SearchNudgeQueue"}
    sends = [
        s
        for s in _statements(template, "ApiFunction")
        if "sqs:SendMessage" in _actions(s) and "Realtime" not in str(s["Resource"])
    ]
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
    created, given = _if(env["OPENSEARCH_URL"], "SearchOn")
    assert created == {"Sub": "https://${SearchDomain.DomainEndpoint}"}
    assert given == {"Ref": "OpenSearchUrl"}
    settings = _settings_of(template, name, monkeypatch)
    assert settings.opensearch_url
    assert settings.opensearch_sigv4 is True
    assert settings.db_iam_auth is True
    es = [s for s in _statements(template, name) if any(a.startswith("es:") for a in _actions(s))]
    assert len(es) == 1
    text, variables = es[0]["Resource"]["Sub"]
    assert text == "${DomainArn}/*"
    created, given = _if(variables["DomainArn"], "SearchOn")
    assert given == {"Ref": "OpenSearchDomainArn"}
    assert _sub(created).endswith(":domain/docs-${StackUid}")  # the created domain's name
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
    source = (ROOT / "chalicelib" / "service_layer" / "search_sync.py").read_text()
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


# ------------------------------------------------------------ operable in AWS
ALARM = "AWS::CloudWatch::Alarm"


def _functions(template: dict[str, Any]) -> list[str]:
    return [n for n, r in template["Resources"].items() if r["Type"] == "AWS::Serverless::Function"]


def _alarms(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {n: r["Properties"] for n, r in template["Resources"].items() if r["Type"] == ALARM}


def composed(template: dict[str, Any]) -> dict[str, list[Any]]:
    """Alarms a composite alarm reads (its ``AlarmRule``) -> that composite's actions:
    the windows of a burn-rate alarm notify through their composite (docs/slo.md)."""
    found: dict[str, list[Any]] = {}
    for resource in template["Resources"].values():
        if resource["Type"] != "AWS::CloudWatch::CompositeAlarm":
            continue
        props = resource["Properties"]
        rule = props["AlarmRule"]
        text = (rule.get("Sub") or rule.get("Fn::Sub")) if isinstance(rule, dict) else rule
        for name in re.findall(r"\$\{(\w+)\.Arn\}", text):
            found[name] = props["AlarmActions"]
    return found


@pytest.fixture(scope="module")
def transformed() -> dict[str, Any]:
    """The template as CloudFormation gets it after the SAM transform (no AWS call:
    local code locations stand in for S3 ones, no managed policy is looked up);
    transformed once per template content, a copy per module."""
    return copy.deepcopy(_transform((ROOT / "template.yaml").read_text()))


@functools.cache
def _transform(text: str) -> dict[str, Any]:
    import logging
    import os

    from samtranslator.translator.transform import transform
    from samtranslator.yaml_helper import yaml_parse

    class NoManagedPolicies:
        def load(self) -> dict[str, str]:
            return {}

    template = yaml_parse(text)
    for resource in template["Resources"].values():
        if resource["Type"] == "AWS::Serverless::Function":
            resource["Properties"]["CodeUri"] = "s3://bucket/code.zip"
        if resource["Type"] == "AWS::Serverless::LayerVersion":
            resource["Properties"]["ContentUri"] = "s3://bucket/layer.zip"
    region = os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    logging.getLogger("samtranslator").setLevel(logging.ERROR)
    params = {"AWS::Region": region, "AWS::AccountId": "123456789012", "AWS::StackName": "docs"}
    out: dict[str, Any] = transform(template, params, NoManagedPolicies())
    return out


def _of_type(transformed: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return {n: r for n, r in transformed["Resources"].items() if r["Type"] == kind}


def test_every_function_is_aliased_traced_and_logged() -> None:
    template = _template()
    groups = {
        r["Properties"]["LogGroupName"]["Sub"]: r["Properties"]
        for r in template["Resources"].values()
        if r["Type"] == "AWS::Logs::LogGroup" and "LogGroupName" in r["Properties"]
    }
    functions = _functions(template)
    assert len(functions) >= 8
    for name in functions:
        assert _setting(template, name, "AutoPublishAlias") == "live", name
        assert _setting(template, name, "Tracing") == "Active", name
        assert groups[f"/aws/lambda/${{{name}}}"]["RetentionInDays"] in (7, 14, 30, 90), name


def test_everything_invokes_the_alias(transformed: dict[str, Any]) -> None:
    """Event sources, schedules and the API's permission name the alias, not $LATEST."""
    aliases = {f"{n}Aliaslive" for n in _functions(_template())}
    assert aliases <= set(_of_type(transformed, "AWS::Lambda::Alias"))
    mappings = _of_type(transformed, "AWS::Lambda::EventSourceMapping").values()
    assert mappings
    for mapping in mappings:
        assert mapping["Properties"]["FunctionName"]["Ref"] in aliases
    rules = _of_type(transformed, "AWS::Events::Rule").values()
    assert rules
    for rule in rules:  # (DbFailoverRule notifies the alarm topic, no function)
        targets = [t for t in rule["Properties"]["Targets"] if t["Id"] != "alarm-topic"]
        assert all(t["Arn"]["Ref"] in aliases for t in targets)
    for permission in _of_type(transformed, "AWS::Lambda::Permission").values():
        assert permission["Properties"]["FunctionName"]["Ref"] in aliases
    api = transformed["Resources"]["ApiInvokePermission"]["Properties"]
    assert api["FunctionName"] == {"Ref": "ApiFunctionAliaslive"}
    uris = {
        op["x-amazon-apigateway-integration"]["uri"]["Fn::Sub"]
        for ops in transformed["Resources"]["Api"]["Properties"]["Body"]["paths"].values()
        for op in ops.values()
    }
    assert uris == {
        "arn:${AWS::Partition}:apigateway:${AWS::Region}:lambda:path/2015-03-31/functions/"
        "${ApiFunctionAliaslive}/invocations"
    }


def test_the_api_has_one_stage_with_logs_and_throttling(transformed: dict[str, Any]) -> None:
    stages = _of_type(transformed, "AWS::ApiGateway::Stage")
    assert len(stages) == 1, sorted(stages)  # no extra "Stage" stage
    stage = next(iter(stages.values()))["Properties"]
    assert stage["StageName"] == {"Ref": "Stage"}
    assert stage["AccessLogSetting"]["DestinationArn"]
    assert stage["MethodSettings"][0]["ThrottlingRateLimit"] > 0
    assert stage["TracingEnabled"] is True


def test_the_api_rolls_out_as_a_canary_that_alarms_roll_back(transformed: dict[str, Any]) -> None:
    template = _template()
    resources = template["Resources"]
    preference = _function(template, "ApiFunction")["DeploymentPreference"]
    config = resources[preference["Type"]["Ref"]]
    assert config["Type"] == "AWS::CodeDeploy::DeploymentConfig"
    assert config["Properties"]["ComputePlatform"] == "Lambda"
    routing = config["Properties"]["TrafficRoutingConfig"]
    assert routing["Type"] == "TimeBasedCanary"
    assert routing["TimeBasedCanary"] == {"CanaryPercentage": 5, "CanaryInterval": 10}
    rollback = {a["Ref"] for a in preference["Alarms"]}
    # the deployed version's own metrics (tests/unit/test_template_deploys.py)
    assert rollback == {"ApiNewVersionErrorsAlarm", "ApiNewVersionLatencyAlarm"}
    rate = resources["Api5xxRateAlarm"]["Properties"]
    stats = {m["Id"]: m["MetricStat"]["Metric"] for m in rate["Metrics"] if "MetricStat" in m}
    assert {m["MetricName"] for m in stats.values()} == {"5XXError", "Count"}
    (expression,) = [m for m in rate["Metrics"] if m.get("ReturnData")]
    assert "errors / requests" in expression["Expression"]
    assert "requests >=" not in expression["Expression"]  # no request-count minimum
    assert (rate["Threshold"], rate["ComparisonOperator"]) == (1, "GreaterThanThreshold")
    p99 = resources["ApiLatencyP99Alarm"]["Properties"]
    # the app's own latency metric, which leaves long polls out (they wait on purpose)
    assert (p99["Namespace"], p99["MetricName"], p99["ExtendedStatistic"], p99["Threshold"]) == (
        "DocsService",
        "RequestLatency",
        "p99",
        500,
    )
    assert p99["Dimensions"] == [{"Name": "service", "Value": "docs"}]
    api_name = resources["Api"]["Properties"]["Name"]
    for dims in [m["Dimensions"] for m in stats.values()]:
        assert {"Name": "ApiName", "Value": api_name} in dims
        assert {"Name": "Stage", "Value": {"Ref": "Stage"}} in dims
    group = transformed["Resources"]["ApiFunctionDeploymentGroup"]["Properties"]
    assert group["AutoRollbackConfiguration"]["Enabled"] is True
    assert "DEPLOYMENT_STOP_ON_ALARM" in group["AutoRollbackConfiguration"]["Events"]
    assert {a["Name"]["Ref"] for a in group["AlarmConfiguration"]["Alarms"]} == rollback


def test_the_pre_traffic_hook_migrates_and_smoke_tests_the_new_version() -> None:
    from functions.deploy_hook import SMOKE_EVENT

    template = _template()
    preference = _function(template, "ApiFunction")["DeploymentPreference"]
    hook_name = preference["Hooks"]["PreTraffic"]["Ref"]
    assert preference["Hooks"]["PostTraffic"] == {"Ref": hook_name}
    hook = _function(template, hook_name)
    # SAM's CodeDeploy role may invoke only functions named CodeDeployHook_*
    assert hook["FunctionName"]["Sub"].startswith("CodeDeployHook_")
    assert hook["Handler"] == "functions.deploy_hook.handler"
    env = _env(template, hook_name)
    # the version being deployed: its migrations, whichever deployment comes first
    assert env["MIGRATE_FUNCTION_ARN"] == {"Ref": "MigrateFunction.Version"}
    assert env["API_FUNCTION_NAME"] == {"Ref": "ApiFunction"}
    statements = _statements(template, hook_name)
    invoke = [s for s in statements if "lambda:InvokeFunction" in _actions(s)]
    invoked = {r["Sub"] for r in invoke[0]["Resource"]}
    deployed = {n for n in _functions(template) if "DeploymentPreference" in _function(template, n)}
    assert invoked == {f"${{{n}.Arn}}:*" for n in deployed}  # their versions and aliases
    report = [
        s for s in statements if "codedeploy:PutLifecycleEventHookExecutionStatus" in _actions(s)
    ]
    assert {"codedeploy:ListDeploymentTargets", "codedeploy:GetDeploymentTarget"} <= _actions(
        report[0]
    )
    assert "${ServerlessDeploymentApplication}" in report[0]["Resource"]["Sub"]
    assert not any("rds-db:connect" in _actions(s) for s in statements)  # MigrateFunction's job
    assert _setting(template, hook_name, "Timeout") > _setting(
        template, "MigrateFunction", "Timeout"
    )
    smoke = SMOKE_EVENT
    assert (smoke["httpMethod"], smoke["path"]) == ("GET", "/health")


def test_every_function_is_alarmed_on_errors_and_throttles() -> None:
    template = _template()
    watched: dict[str, set[str]] = {}
    for alarm in _alarms(template).values():
        # a plain alarm, or the metrics of a metric-math one (the authorizer's errors
        # less the tokens it refused: functions/authorizer.py)
        stats = [alarm] + [m["MetricStat"]["Metric"] for m in alarm.get("Metrics", [])
                           if "MetricStat" in m]  # fmt: skip
        for metric in stats:
            if metric.get("Namespace") == "AWS/Lambda" and len(metric["Dimensions"]) == 1:
                # (the deployed version's alarms: tests/unit/test_template_deploys.py)
                (dim,) = metric["Dimensions"]
                assert dim["Name"] == "FunctionName"
                watched.setdefault(dim["Value"]["Ref"], set()).add(metric["MetricName"])
    for name in _functions(template):
        assert watched.get(name) == {"Errors", "Throttles"}, name


def test_every_alarm_notifies_the_alarm_topic() -> None:
    template = _template()
    action = {"If": ["CreateAlarmTopic", {"Ref": "AlarmTopic"}, {"Ref": "AlarmTopicArn"}]}
    alarms = _alarms(template)
    assert len(alarms) >= 30
    windows = composed(template)
    for name, alarm in alarms.items():
        if name in windows:  # a burn-rate window: its composite notifies (docs/slo.md)
            assert "AlarmActions" not in alarm and windows[name], name
            assert "docs/slo.md" in alarm["AlarmDescription"], name
            continue
        assert alarm["AlarmActions"] == [action], name
        assert "docs/operations.md" in alarm["AlarmDescription"] or name in (
            "ContentEventsDLQAlarm",
            "SearchNudgeDLQAlarm",
            "SearchSyncLagAlarm",
        ), name
    resources = template["Resources"]
    assert resources["AlarmTopic"]["Condition"] == "CreateAlarmTopic"
    assert resources["AlarmEmailSubscription"]["Properties"]["Endpoint"] == {"Ref": "AlarmEmail"}


def test_every_dlq_is_alarmed_on_depth_and_age() -> None:
    template = _template()
    queues = {
        n
        for n, r in template["Resources"].items()
        if r["Type"] == "AWS::SQS::Queue" and n.endswith("DLQ")
    }
    assert queues == {"ContentEventsDLQ", "SearchNudgeDLQ", "FunctionFailuresDLQ"}
    seen: dict[str, set[str]] = {}
    for alarm in _alarms(template).values():
        if alarm.get("Namespace") == "AWS/SQS":
            queue = alarm["Dimensions"][0]["Value"]["GetAtt"].split(".")[0]
            seen.setdefault(queue, set()).add(alarm["MetricName"])
    for queue in queues:
        assert seen[queue] == {
            "ApproximateNumberOfMessagesVisible",
            "ApproximateAgeOfOldestMessage",
        }, queue
    dlq = _setting(template, "ApiFunction", "DeadLetterQueue")
    assert dlq == {"Type": "SQS", "TargetArn": {"GetAtt": "FunctionFailuresDLQ.Arn"}}


def test_the_breaker_and_cache_metrics_are_the_ones_the_code_emits() -> None:
    template = _template()
    breaker = template["Resources"]["CacheBreakerOpenAlarm"]["Properties"]
    app_source = (ROOT / "app.py").read_text()
    assert f'gauge("{breaker["MetricName"]}"' in app_source
    assert breaker["Statistic"] == "Maximum"  # stays in alarm while the breaker is open
    latency = template["Resources"]["ApiLatencyP99Alarm"]["Properties"]
    assert f'milliseconds("{latency["MetricName"]}"' in app_source
    api_env = _env(template, "ApiFunction")
    assert breaker["Namespace"] == api_env["POWERTOOLS_METRICS_NAMESPACE"]
    assert breaker["Dimensions"] == [
        {"Name": "service", "Value": api_env["POWERTOOLS_SERVICE_NAME"]}
    ]
    body = template["Resources"]["Dashboard"]["Properties"]["DashboardBody"]["Sub"][0]
    documents_api = (ROOT / "chalicelib" / "api" / "documents.py").read_text()
    for metric in ("CacheHits", "CacheMisses"):
        assert f'"{metric}"' in documents_api and f'"{metric}"' in body


def test_the_dashboard_shows_every_function_and_is_json() -> None:
    import re

    template = _template()
    body, variables = template["Resources"]["Dashboard"]["Properties"]["DashboardBody"]["Sub"]
    names = set(re.findall(r"\$\{([^}]+)\}", body))
    for name in names:  # every ${...} is a parameter, resource, pseudo parameter or variable
        base = name.split(".")[0]
        assert (
            base in template["Parameters"]
            or base in template["Resources"]
            or base in variables
            or base.startswith("AWS::")
        ), name
    dashboard = json.loads(re.sub(r"\$\{[^}]+\}", "0", body))
    text = json.dumps(dashboard)
    for name in _functions(template):
        assert f"${{{name}}}" in body, name
    for metric in ("Invocations", "Errors", "Throttles", "Duration", "5XXError", "4XXError",
                   "Latency", "SearchSyncLag", "CacheBreakerOpened"):  # fmt: skip
        assert f'"{metric}"' in text, metric


def test_the_waf_guards_the_api_stage() -> None:
    resources = _template()["Resources"]
    acl = resources["WebAcl"]
    assert acl["Condition"] == "WafOn"
    assert acl["Properties"]["Scope"] == "REGIONAL"
    rules = acl["Properties"]["Rules"]
    rate = [r for r in rules if "RateBasedStatement" in r["Statement"]]
    assert rate[0]["Statement"]["RateBasedStatement"]["Limit"] == {"Ref": "WafRateLimit"}
    managed = {
        r["Statement"]["ManagedRuleGroupStatement"]["Name"]
        for r in rules
        if "ManagedRuleGroupStatement" in r["Statement"]
    }
    assert {"AWSManagedRulesCommonRuleSet", "AWSManagedRulesKnownBadInputsRuleSet"} <= managed
    association = resources["WebAclAssociation"]
    assert association["Condition"] == "WafOn"
    assert association["Properties"]["WebACLArn"] == {"GetAtt": "WebAcl.Arn"}
    assert association["Properties"]["ResourceArn"]["Sub"].endswith(
        "/restapis/${Api}/stages/${Api.Stage}"
    )


def test_the_content_key_is_retained_with_the_bucket() -> None:
    resources = _template()["Resources"]
    for name in ("ContentKey", "ContentBucket"):
        assert resources[name]["DeletionPolicy"] == "Retain", name
        assert resources[name]["UpdateReplacePolicy"] == "Retain", name
    assert resources["ContentKey"]["Properties"]["EnableKeyRotation"] is True


def test_the_page_token_secret_is_read_by_the_api_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    template = _template()
    secret = template["Resources"]["PageTokenSecret"]
    assert secret["Type"] == "AWS::SecretsManager::Secret"
    assert secret["Properties"]["GenerateSecretString"]["PasswordLength"] >= 32
    for name in _functions(template):
        env = _env(template, name)
        assert "DOCS_PAGE_TOKEN_SECRET" not in env, name  # never the value
        reads = [
            s
            for s in _statements(template, name)
            if any("secretsmanager:" in a for a in _actions(s))
        ]
        # the real-time functions seal feed cursors (each frame's seq) with it too; the
        # API and the webhook deliverer derive the key that seals endpoint secrets from it
        if name in (
            "ApiFunction",
            "RealtimeFunction",
            "RealtimeFanOutFunction",
            "WebhookDeliverFunction",
        ):
            assert env["DOCS_PAGE_TOKEN_SECRET_ARN"] == {"Ref": "PageTokenSecret"}
            assert [(s["Action"], s["Resource"]) for s in reads] == [
                ("secretsmanager:GetSecretValue", {"Ref": "PageTokenSecret"})
            ]
        else:
            assert "DOCS_PAGE_TOKEN_SECRET_ARN" not in env and not reads, name
    settings = _settings_of(template, "ApiFunction", monkeypatch)
    assert settings.page_token_secret == "secret-of-https://docs_page_token_secret_arn.test"


def test_the_app_pins_the_authorizers_issuer_and_audience(monkeypatch: pytest.MonkeyPatch) -> None:
    template = _template()
    env = _env(template, "ApiFunction")
    assert env["DOCS_TRUST_AUTHORIZER_CLAIMS"] == "true"
    created, given = _if(env["DOCS_JWT_ISSUER"], "UserPoolOn")
    assert created == {"Sub": "https://cognito-idp.${AWS::Region}.amazonaws.com/${UserPool}"}
    assert given == {"Ref": "JwtIssuer"}
    assert _if(env["DOCS_JWT_AUDIENCE"], "UserPoolOn") == (
        {"Ref": "UserPoolClient"},
        {"Ref": "JwtAudience"},
    )
    import re

    issuer = re.compile(template["Parameters"]["JwtIssuer"]["AllowedPattern"])
    assert issuer.fullmatch("https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_AbC123")
    assert not issuer.fullmatch("docs-local")


def test_the_proxy_connections_are_capped(monkeypatch: pytest.MonkeyPatch) -> None:
    template = _template()
    api = _function(template, "ApiFunction")["ReservedConcurrentExecutions"]
    assert api["If"][1] == {"Ref": "ApiReservedConcurrency"}
    upload = _function(template, "ProcessUploadFunction")
    assert upload["ReservedConcurrentExecutions"] == {
        "If": ["ReserveConcurrencyOn", {"Ref": "ProcessUploadConcurrency"}, {"Ref": "AWS::NoValue"}]
    }
    (sqs,) = _sqs_sources(template, "ProcessUploadFunction")
    assert sqs["ScalingConfig"]["MaximumConcurrency"] == {"Ref": "ProcessUploadConcurrency"}
    settings = _settings_of(template, "ApiFunction", monkeypatch)
    assert settings.db_ssl_params()["sslmode"] == "verify-full"
    assert Path(settings.db_ssl_params()["sslrootcert"]).is_file()  # shipped with the code
    deploy = (ROOT / "docs" / "deploy.md").read_text()
    assert "MaxConnectionsPercent" in deploy and "ApiReservedConcurrency" in deploy


def test_vpc_endpoints_are_optional() -> None:
    resources = _template()["Resources"]
    endpoints = {n: r for n, r in resources.items() if r["Type"] == "AWS::EC2::VPCEndpoint"}
    services = {
        r["Properties"]["ServiceName"]["Sub"].rsplit(".", 1)[1]: r for r in endpoints.values()
    }
    # kms: personal-data fields; appconfigdata: feature flags
    assert set(services) == {"s3", "sqs", "secretsmanager", "kms", "appconfigdata"}
    assert services["s3"]["Properties"]["VpcEndpointType"] == "Gateway"
    assert all(r["Condition"] == "VpcEndpointsOn" for r in endpoints.values())


def test_every_checkov_skip_says_why() -> None:
    import re

    text = (ROOT / "template.yaml").read_text()
    for match in re.finditer(r"#\s*checkov:skip=(\w+):?(.*)", text):
        assert len(match.group(2).strip()) > 20, match.group(0)
    for name, resource in _template()["Resources"].items():
        for skip in resource.get("Metadata", {}).get("checkov", {}).get("skip", []):
            assert skip["id"].startswith("CKV") and len(skip.get("comment", "")) > 20, name


# -- OIDC: the app's issuer, audience and keys are the authorizer's --------
def test_the_apps_issuer_audience_and_jwks_are_the_authorizers() -> None:
    template = _template()
    env = template["Globals"]["Function"]["Environment"]["Variables"]
    issuer_created, issuer_given = _if(env["DOCS_JWT_ISSUER"], "UserPoolOn")
    jwks_created, jwks_given = _if(env["DOCS_JWT_JWKS_URL"], "UserPoolOn")
    # the JWKS is the issuer's own, in both branches
    assert _sub(jwks_created) == _sub(issuer_created) + "/.well-known/jwks.json"
    assert _sub(jwks_given) == "${JwtIssuer}/.well-known/jwks.json"
    assert issuer_given == {"Ref": "JwtIssuer"}
    # ... and the issuer is the pool; the API Gateway authorizer is a function that
    # reads these same settings (Globals; it overrides none of them)
    assert _sub(issuer_created).endswith("/${UserPool}")
    schemes = template["Resources"]["Api"]["Properties"]["DefinitionBody"]["components"]
    authorizer = schemes["securitySchemes"]["tokenAuthorizer"]["x-amazon-apigateway-authorizer"]
    assert (
        "/functions/${AuthorizerFunction.Alias}/invocations" in authorizer["authorizerUri"]["Sub"]
    )
    own = _function(template, "AuthorizerFunction")["Environment"]["Variables"]
    assert not {"DOCS_JWT_ISSUER", "DOCS_JWT_AUDIENCE", "DOCS_JWT_JWKS_URL",
                "DOCS_MACHINE_CLIENTS"} & set(own)  # fmt: skip
    audience_created, audience_given = _if(env["DOCS_JWT_AUDIENCE"], "UserPoolOn")
    assert audience_created == {"Ref": "UserPoolClient"} and audience_given == {
        "Ref": "JwtAudience"
    }
