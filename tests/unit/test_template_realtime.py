"""The real-time resources of template.yaml: the WebSocket API, its functions,
the nudge queue and the alarms (docs/realtime.md)."""

from __future__ import annotations

from typing import Any

from tests.unit.test_template import (
    ROOT,
    _actions,
    _alarms,
    _env,
    _function,
    _sqs_sources,
    _statements,
    _template,
)


def _resources(kind: str) -> dict[str, dict[str, Any]]:
    return {n: r for n, r in _template()["Resources"].items() if r["Type"] == kind}


def test_the_websocket_api_routes_every_action_to_the_realtime_alias() -> None:
    template = _template()
    (api,) = _resources("AWS::ApiGatewayV2::Api").values()
    assert api["Properties"]["ProtocolType"] == "WEBSOCKET"
    assert api["Properties"]["RouteSelectionExpression"] == "$request.body.action"
    routes = {r["Properties"]["RouteKey"] for r in _resources("AWS::ApiGatewayV2::Route").values()}
    assert routes == {"$connect", "$disconnect", "subscribe", "unsubscribe", "$default"}
    integration = template["Resources"]["RealtimeIntegration"]["Properties"]
    assert "${RealtimeFunctionAliaslive}" in integration["IntegrationUri"]["Sub"]
    permission = template["Resources"]["RealtimeInvokePermission"]["Properties"]
    assert permission["FunctionName"] == {"Ref": "RealtimeFunctionAliaslive"}
    assert _function(template, "RealtimeFunction")["Handler"] == "functions.realtime.ws_handler"


def test_only_the_realtime_functions_manage_connections_and_only_of_this_api() -> None:
    template = _template()
    for name, resource in template["Resources"].items():
        if (
            resource["Type"] != "AWS::Serverless::Function"
            or "InlineCode" in resource["Properties"]
        ):
            continue
        manage = [s for s in _statements(template, name)
                  if "execute-api:ManageConnections" in _actions(s)]  # fmt: skip
        if name not in ("RealtimeFunction", "RealtimeFanOutFunction"):
            assert not manage, name
            continue
        (statement,) = manage
        arns = statement["Resource"] if isinstance(statement["Resource"], list) else [
            statement["Resource"]]  # fmt: skip
        for arn in arns:
            assert "${RealtimeApi}/${Stage}/" in arn["Sub"] and "@connections/*" in arn["Sub"]


def test_the_token_is_verified_by_the_function_not_trusted_from_an_authorizer() -> None:
    env = _env(_template(), "RealtimeFunction")
    assert env["DOCS_TRUST_AUTHORIZER_CLAIMS"] == "false"
    assert env["DOCS_JWT_JWKS_URL"]
    assert env["DOCS_REALTIME_ENDPOINT_URL"] == _env(_template(), "RealtimeFanOutFunction")[
        "DOCS_REALTIME_ENDPOINT_URL"]  # fmt: skip


def test_writers_nudge_the_fan_out_which_also_runs_every_minute() -> None:
    template = _template()
    for name in ("ApiFunction", "ProcessUploadFunction", "ExpireUploadsFunction"):
        assert _env(template, name)["DOCS_REALTIME_NUDGE_QUEUE_URL"] == {
            "Ref": "RealtimeNudgeQueue"}, name  # fmt: skip
    (nudge,) = _sqs_sources(template, "RealtimeFanOutFunction")
    assert nudge["EventSourceArn"] == {"GetAtt": "RealtimeNudgeQueue.Arn"}
    events = _function(template, "RealtimeFanOutFunction")["Events"]
    assert events["Sweep"]["Properties"]["Schedule"] == "rate(1 minute)"
    queue = template["Resources"]["RealtimeNudgeQueue"]["Properties"]
    assert queue["FifoQueue"] is True  # the nudge adapter sends group and deduplication ids


def test_the_lag_alarm_watches_the_metric_the_fan_out_emits() -> None:
    template = _template()
    alarm = _alarms(template)["RealtimeLagAlarm"]
    source = (ROOT / "chalicelib" / "service_layer" / "fanout.py").read_text()
    assert f'milliseconds("{alarm["MetricName"]}"' in source
    env = _env(template, "RealtimeFanOutFunction")
    assert alarm["Namespace"] == env["POWERTOOLS_METRICS_NAMESPACE"]
    assert alarm["Dimensions"] == [{"Name": "service", "Value": env["POWERTOOLS_SERVICE_NAME"]}]
    assert alarm["TreatMissingData"] == "breaching"
