"""template.yaml: every code function rolls out through its alias after the migrations,
its rollback alarms watch the deployed version, and a synthetic canary watches the API."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from tests.unit.test_template import _alarms, _env, _function, _functions, _template

ROOT = Path(__file__).resolve().parents[2]
HOOK = "DeployHookFunction"


def _code_functions(template: dict[str, Any]) -> list[str]:
    """Functions built from this repository's code, but the deploy hook (CodeDeploy
    invokes it by name; it cannot gate its own deployment)."""
    return [
        n
        for n in _functions(template)
        if not _function(template, n).get("InlineCode") and n != HOOK
    ]


def _refs(value: Any) -> list[str]:
    """Every Ref in a value (``!Ref X`` and ``${X}`` in a Sub)."""
    found: list[str] = []
    if isinstance(value, dict):
        for key, inner in value.items():
            if key == "Ref" and isinstance(inner, str):
                found.append(inner)
            elif key == "Sub":
                text = inner if isinstance(inner, str) else inner[0]
                found += re.findall(r"\$\{([^}]+)\}", text)
            else:
                found += _refs(inner)
    elif isinstance(value, list):
        for inner in value:
            found += _refs(inner)
    return found


def _dimension_sets(alarm: dict[str, Any]) -> list[dict[str, Any]]:
    if "Metrics" in alarm:
        return [
            {d["Name"]: d["Value"] for d in m["MetricStat"]["Metric"]["Dimensions"]}
            for m in alarm["Metrics"]
            if "MetricStat" in m
        ]
    return [{d["Name"]: d["Value"] for d in alarm["Dimensions"]}]


def test_every_code_function_deploys_through_codedeploy_after_the_migrations() -> None:
    template = _template()
    names = _code_functions(template)
    assert len(names) >= 13
    for name in names:
        preference = _function(template, name).get("DeploymentPreference")
        assert preference, f"{name} switches to new code at once"
        hooks = preference["Hooks"]
        # the hook runs the migrations before any new version takes traffic
        assert hooks == {"PreTraffic": {"Ref": HOOK}, "PostTraffic": {"Ref": HOOK}}, name
        assert preference["Alarms"], name
    assert "DeploymentPreference" not in _function(template, HOOK)
    # the hook migrates with the version being deployed, not whatever the alias holds
    assert _env(template, HOOK)["MIGRATE_FUNCTION_ARN"] == {"Ref": "MigrateFunction.Version"}


def test_rollback_alarms_watch_the_deployed_version_only() -> None:
    template = _template()
    alarms = _alarms(template)
    for name in _code_functions(template):
        for ref in _function(template, name)["DeploymentPreference"]["Alarms"]:
            alarm = alarms[ref["Ref"]]
            for dims in _dimension_sets(alarm):
                version = dims.get("ExecutedVersion", dims.get("version"))
                assert version is not None, (name, ref, dims)
                # this deploy's version number, out of the version's ARN
                assert version == {"Select": [7, {"Split": [":", {"Ref": f"{name}.Version"}]}]}
                if "ExecutedVersion" in dims:  # Lambda's per-version metrics are the alias's
                    assert dims["Resource"] == {"Sub": f"${{{name}}}:live"}
                    assert dims["FunctionName"] == {"Ref": name}
            assert alarm["TreatMissingData"] == "notBreaching"


def test_the_api_rolls_back_on_its_new_versions_failures_without_a_traffic_minimum() -> None:
    template = _template()
    alarm = _alarms(template)["ApiNewVersionErrorsAlarm"]
    metrics = {m["Id"]: m for m in alarm["Metrics"]}
    names = {
        i: (m["MetricStat"]["Metric"]["Namespace"], m["MetricStat"]["Metric"]["MetricName"])
        for i, m in metrics.items()
        if "MetricStat" in m
    }
    # the app's 5xx answers (per version: chalicelib.observability.per_version) and crashes
    assert sorted(names.values()) == [
        ("AWS/Lambda", "Errors"), ("AWS/Lambda", "Invocations"), ("DocsService", "ServerErrors"),
    ]  # fmt: skip
    (rate,) = [m for m in alarm["Metrics"] if m.get("ReturnData")]
    expression = rate["Expression"]
    assert "/ requests" in expression
    floor = re.search(r"failed >= (\d+)", expression)
    assert floor is not None
    assert int(floor.group(1)) <= 2  # a small floor of failures, no minimum of requests
    assert "requests >=" not in expression
    # 1 of 5 % canary traffic failing is far above 1 % of the new version's requests
    assert (alarm["Threshold"], alarm["ComparisonOperator"]) == (1, "GreaterThanThreshold")
    source = (ROOT / "app.py").read_text()
    assert "per_version()" in source  # the API publishes its metrics per version


def test_the_synthetic_canary_runs_every_minute_outside_the_vpc_and_alarms_on_silence() -> None:
    template = _template()
    canary = _function(template, "CanaryFunction")
    assert canary["Handler"] == "functions.canary.handler"
    assert "VpcConfig" not in canary
    (event,) = canary["Events"].values()
    assert (event["Type"], event["Properties"]["Schedule"]) == ("Schedule", "rate(1 minute)")
    assert _env(template, "CanaryFunction")["API_FUNCTION_ALIAS_ARN"] == {
        "Sub": "${ApiFunction.Arn}:live"
    }
    alarm = _alarms(template)["CanaryAlarm"]
    assert alarm["TreatMissingData"] == "breaching"
    assert (alarm["Namespace"], alarm["MetricName"]) == ("DocsService", "CanarySucceeded")
    assert alarm["Dimensions"] == [{"Name": "service", "Value": "docs"}]
    assert _env(template, "CanaryFunction")["POWERTOOLS_SERVICE_NAME"] == "docs"
    assert 'count("CanarySucceeded")' in (ROOT / "functions/canary.py").read_text()
    assert (alarm["ComparisonOperator"], alarm["Threshold"]) == ("LessThanThreshold", 1)


def test_event_sources_and_the_canary_target_aliases_not_latest() -> None:
    """The schedules, queues and the canary name the alias (SAM's AutoPublishAlias
    routes Events to it; the canary names it explicitly)."""
    template = _template()
    for name in _code_functions(template):
        if _function(template, name).get("Events"):
            assert _function(template, name).get("AutoPublishAlias", "live") == "live", name
    assert "ApiFunction.Alias" not in str(_refs(_function(template, "CanaryFunction")))
