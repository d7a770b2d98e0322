"""template.yaml: the API's Lambda TOKEN authorizer (functions/authorizer.py) guards every
path, runs outside the VPC, may be invoked by this API only, is alarmed, and its cached
answers do not outlive the tokens by more than the app lets them (docs/security.md)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.unit.test_template import (
    ANY_METHOD,
    PUBLIC,
    _alarms,
    _env,
    _function,
    _settings_of,
    _template,
    _transform,
)

SCHEME = "tokenAuthorizer"
UNITS_S = {"seconds": 1, "minutes": 60, "hours": 3600, "days": 86400}


def _scheme(template: dict[str, Any]) -> dict[str, Any]:
    body = template["Resources"]["Api"]["Properties"]["DefinitionBody"]
    schemes: dict[str, Any] = body["components"]["securitySchemes"]
    assert set(schemes) == {SCHEME}  # the Cognito user-pool authorizer is gone
    scheme: dict[str, Any] = schemes[SCHEME]
    return scheme


def test_the_scheme_is_a_token_authorizer_on_the_authorization_header() -> None:
    import re

    scheme = _scheme(_template())
    assert (scheme["type"], scheme["name"], scheme["in"]) == ("apiKey", "Authorization", "header")
    assert scheme["x-amazon-apigateway-authtype"] == "custom"
    authorizer = scheme["x-amazon-apigateway-authorizer"]
    assert authorizer["type"] == "token"
    assert authorizer["identitySource"] == "method.request.header.Authorization"
    # the alias CodeDeploy moves, never $LATEST
    assert authorizer["authorizerUri"]["Sub"].endswith(
        "/functions/${AuthorizerFunction.Alias}/invocations"
    )
    pattern = re.compile(authorizer["identityValidationExpression"])
    assert pattern.fullmatch("Bearer eyJhbGciOi.eyJzdWIiOi.c2lnbmF0dXJl_-")
    for header in ("eyJhbGciOi.x.y", "Basic dXNlcjpwYXNz", "Bearer ", "Bearer a b"):
        assert not pattern.fullmatch(header), header  # API Gateway's 401, no invocation


def test_every_api_operation_but_the_public_ones_uses_the_token_authorizer() -> None:
    paths = _template()["Resources"]["Api"]["Properties"]["DefinitionBody"]["paths"]
    secured = 0
    for path, ops in paths.items():
        for method, op in ops.items():
            public = method == "options" or (
                (path, method.upper()) in PUBLIC
                or (method == ANY_METHOD and path in {p for p, _ in PUBLIC})
            )
            assert op.get("security") == (None if public else [{SCHEME: []}]), (path, method)
            secured += not public
    assert secured > 40


def test_the_authorizer_runs_outside_the_vpc_with_nothing_but_the_logs_and_its_dlq() -> None:
    template = _template()
    function = _function(template, "AuthorizerFunction")
    assert function["Handler"] == "functions.authorizer.handler"
    assert "VpcConfig" not in function  # the issuer's JWKS is on the internet
    assert "Policies" not in function  # no AWS API (SAM adds the logs, X-Ray, the DLQ)
    assert function["ReservedConcurrentExecutions"]["If"][0] == "ReserveConcurrencyOn"
    # the app's own settings, without the cache's secret (it has no cache)
    env = _env(template, "AuthorizerFunction")
    assert env["DOCS_REDIS_AUTH_SECRET_ARN"] == ""
    assert env["DOCS_TRACE_PATCH"] == ""


def test_the_authorizers_settings_are_the_apps(monkeypatch: pytest.MonkeyPatch) -> None:
    template = _template()
    api = _settings_of(template, "ApiFunction", monkeypatch)
    own = _settings_of(template, "AuthorizerFunction", monkeypatch)
    for name in ("jwt_issuer", "jwt_audience", "jwt_jwks_url", "machine_clients",
                 "oauth_resource_server", "jwt_leeway_s", "jwt_max_lifetime_s"):  # fmt: skip
        assert getattr(own, name) == getattr(api, name), name
    assert api.trust_authorizer_claims is True


def test_only_this_apis_authorizers_may_invoke_the_alias() -> None:
    transformed = _transform((_root() / "template.yaml").read_text())
    permission = transformed["Resources"]["AuthorizerInvokePermission"]["Properties"]
    assert permission["FunctionName"] == {"Ref": "AuthorizerFunctionAliaslive"}
    assert permission["Principal"] == "apigateway.amazonaws.com"
    assert permission["Action"] == "lambda:InvokeFunction"
    assert permission["SourceArn"]["Fn::Sub"].endswith(":${Api}/authorizers/*")
    # after the transform the API calls the alias the permission names
    schemes = transformed["Resources"]["Api"]["Properties"]["Body"]["components"]
    uri = schemes["securitySchemes"][SCHEME]["x-amazon-apigateway-authorizer"]["authorizerUri"]
    assert uri["Fn::Sub"].endswith("/functions/${AuthorizerFunctionAliaslive}/invocations")


def _root() -> Any:
    from tests.unit.test_template import ROOT

    return ROOT


def test_the_authorizer_is_alarmed_without_counting_refused_tokens() -> None:
    alarms = _alarms(_template())
    for name in ("AuthorizerFunctionErrorsAlarm", "AuthorizerNewVersionErrorsAlarm"):
        metrics = {m["Id"]: m for m in alarms[name]["Metrics"]}
        errors = metrics["errors"]["MetricStat"]["Metric"]
        refused = metrics["refused"]["MetricStat"]["Metric"]
        assert (errors["Namespace"], errors["MetricName"]) == ("AWS/Lambda", "Errors")
        assert (refused["Namespace"], refused["MetricName"]) == (
            "DocsService",
            "AuthorizerRejected",
        )
        assert metrics["failures"]["Expression"] == "FILL(errors, 0) - FILL(refused, 0)"
        assert (alarms[name]["Threshold"], alarms[name]["ComparisonOperator"]) == (
            0,
            "GreaterThanThreshold",
        )
    throttles = alarms["AuthorizerFunctionThrottlesAlarm"]
    assert throttles["MetricName"] == "Throttles"
    source = (_root() / "functions/authorizer.py").read_text()
    assert 'count("AuthorizerRejected")' in source and "per_version()" in source
    rollback = _function(_template(), "AuthorizerFunction")["DeploymentPreference"]["Alarms"]
    assert rollback == [{"Ref": "AuthorizerNewVersionErrorsAlarm"}]


def test_the_cache_ttl_stays_under_every_tokens_lifetime(monkeypatch: pytest.MonkeyPatch) -> None:
    """API Gateway serves a cached Allow for the TTL, even past the token's exp; the app
    refuses an expired exp from the context, and the TTL is short next to the lifetimes."""
    template = _template()
    ttl = _scheme(template)["x-amazon-apigateway-authorizer"]["authorizerResultTtlInSeconds"]
    assert 0 < ttl <= 300
    resources = template["Resources"]
    lifetimes = []
    for name in ("UserPoolClient", "MachineClient"):
        props = resources[name]["Properties"]
        units = props.get("TokenValidityUnits", {})
        for kind in ("IdToken", "AccessToken"):
            if f"{kind}Validity" in props:
                lifetimes.append(props[f"{kind}Validity"] * UNITS_S[units.get(kind, "hours")])
    assert lifetimes and ttl <= min(lifetimes)
    settings = _settings_of(template, "ApiFunction", monkeypatch)
    assert ttl <= settings.jwt_max_lifetime_s
    assert ttl <= settings.jwt_jwks_ttl_s  # a withdrawn key: no longer than the key cache


def test_the_access_log_names_the_authorizers_principal() -> None:
    fmt = _template()["Resources"]["Api"]["Properties"]["AccessLogSetting"]["Format"]
    assert '"sub":"$context.authorizer.principalId"' in fmt
    assert "claims" not in fmt
