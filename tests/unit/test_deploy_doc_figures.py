"""What a first deploy in a fresh account meets, checked offline: the figures
docs/deploy.md states (computed from the template, so the page cannot drift),
the rule that alarms reach someone, reserved concurrency that can be turned
off, bucket names that let a stage be re-created, and a retention on every log
group."""

from __future__ import annotations

import copy
import functools
import math
import re
from typing import Any

import pytest

from tests.unit.test_template import ROOT, _function, _functions, _sqs_sources, _transform
from tests.unit.test_template import _template as _read_template
from tests.unit.test_template_data_tier import _failed_rules, _rule_value

DEPLOY = ROOT / "docs" / "deploy.md"
NOT_ON_THE_DATABASE = {
    "DeployHookFunction",
    "CanaryFunction",
    "TokenClaimsFunction",
    "AuthorizerFunction",  # the issuer's JWKS only
}  # Lambda APIs / no I/O
DATA_TIER = {
    "NetworkOn", "DatabaseOn", "CacheOn", "SearchOn", "UserPoolOn", "DataKeyOn",
    "FunctionSgOn", "VpcEndpointsOn", "EndpointSgOn", "SearchAdminRoleOn", "HasDbProxyName",
    "NatOn", "NatPerAzOn", "DbReaderOn", "MachineClientOn",
}  # fmt: skip
EN_DASH, TIMES = "\u2013", "\u00d7"  # as the page writes ranges and products
PAGER = "arn:aws:sns:us-east-1:123456789012:oncall"


@functools.cache
def _template() -> dict[str, Any]:
    return _read_template()


@functools.cache
def _transformed() -> dict[str, Any]:
    """The template after the SAM transform, offline (tests/unit/test_template.py's;
    a copy of this module's own)."""
    return copy.deepcopy(_transform((ROOT / "template.yaml").read_text()))


def _defaults(**given: str) -> dict[str, Any]:
    params: dict[str, Any] = {}
    for name, spec in _template()["Parameters"].items():
        value = str(given.get(name, spec.get("Default", "")))
        params[name] = value.split(",") if spec["Type"] == "CommaDelimitedList" else value
    return params


def _condition(name: str, params: dict[str, Any]) -> bool:
    """A template condition for these parameters (Equals/Not/And/Or/Join/Condition)."""
    conditions = _template()["Conditions"]

    def value(node: Any) -> Any:
        if isinstance(node, dict) and set(node) == {"Condition"}:
            return _condition(node["Condition"], params)
        if isinstance(node, dict) and set(node) == {"Join"}:
            sep, parts = node["Join"]
            return sep.join(str(p) for p in value(parts))
        if isinstance(node, dict) and len(node) == 1:
            ((fn, arg),) = node.items()
            return _rule_value({fn: value(arg) if fn != "Ref" else arg}, params)
        if isinstance(node, list):
            return [value(n) for n in node]
        return node

    return bool(value(conditions[name]))


def _created(**given: str) -> dict[str, dict[str, Any]]:
    """The transformed resources a deploy with these parameters creates."""
    params = _defaults(**given)
    return {
        n: r
        for n, r in _transformed()["Resources"].items()
        if "Condition" not in r or _condition(r["Condition"], params)
    }


def _reserved(name: str) -> int:
    """A function's reserved concurrency with ReserveConcurrency=true and the defaults."""
    value = _function(_template(), name).get("ReservedConcurrentExecutions")
    if value is None:
        return 0
    condition, on, off = value["If"]
    assert off == {"Ref": "AWS::NoValue"}, name
    if condition == "HasApiReservedConcurrency":
        on = {"Ref": "ApiReservedConcurrency"}
    else:
        assert condition == "ReserveConcurrencyOn", name
    if isinstance(on, dict):
        return int(_template()["Parameters"][on["Ref"]]["Default"])
    return int(on)


def _figure(pattern: str) -> str:
    match = re.search(pattern, DEPLOY.read_text())
    assert match, f"docs/deploy.md no longer says: {pattern}"
    return match.group(1)


# ---------------------------------------------------------------- alarm destination


def test_a_deploy_whose_alarms_reach_nobody_is_refused_outside_a_sandbox() -> None:
    assert _failed_rules(AlarmEmail="") == {"AlarmsReachSomeone"}
    assert _failed_rules(AlarmEmail="", AlarmTopicArn=PAGER) == set()
    assert _failed_rules(AlarmEmail="oncall@example.com") == set()
    assert _failed_rules(AlarmEmail="", Sandbox="true") == set()
    params = _template()["Parameters"]
    assert params["Sandbox"]["Default"] == "false"  # a sandbox says so
    assert re.fullmatch(params["AlarmTopicArn"]["AllowedPattern"], PAGER)
    assert not re.fullmatch(params["AlarmEmail"]["AllowedPattern"], "not an address")


def test_the_stacks_topic_lets_the_alarms_and_the_failover_rule_publish() -> None:
    resources = _template()["Resources"]
    policy = resources["AlarmTopicPolicy"]
    assert policy["Condition"] == "CreateAlarmTopic"
    principals = {
        s["Principal"]["Service"] for s in policy["Properties"]["PolicyDocument"]["Statement"]
    }
    assert principals == {"cloudwatch.amazonaws.com", "events.amazonaws.com"}
    rule = resources["DbFailoverRule"]["Properties"]
    assert rule["EventPattern"]["source"] == ["aws.rds"]
    assert "failover" in rule["EventPattern"]["detail"]["EventCategories"]
    (target,) = rule["Targets"]
    assert target["Arn"] == {
        "If": ["CreateAlarmTopic", {"Ref": "AlarmTopic"}, {"Ref": "AlarmTopicArn"}]
    }


# ---------------------------------------------------------------- concurrency


def test_every_reservation_can_be_turned_off_for_a_small_account() -> None:
    template = _template()
    for name in _functions(template):
        value = _function(template, name).get("ReservedConcurrentExecutions")
        if value is None:
            continue
        condition = value["If"][0]
        assert condition in ("ReserveConcurrencyOn", "HasApiReservedConcurrency"), name
        assert value["If"][2] == {"Ref": "AWS::NoValue"}, name
    assert {"Condition": "ReserveConcurrencyOn"} in template["Conditions"][
        "HasApiReservedConcurrency"
    ]["And"]
    assert template["Parameters"]["ReserveConcurrency"]["AllowedValues"] == ["true", "false"]


# ---------------------------------------------------------------- buckets, log groups


@pytest.mark.parametrize(
    ("bucket", "env"),
    [
        ("ContentBucket", "DOCS_CONTENT_BUCKET"),
        ("AuditBucket", "DOCS_AUDIT_BUCKET"),
        ("ExportsBucket", "DOCS_EXPORT_BUCKET"),
    ],
)
def test_bucket_names_carry_the_stack_id_so_a_stage_can_be_re_created(
    bucket: str, env: str
) -> None:
    template = _template()
    name = template["Resources"][bucket]["Properties"]["BucketName"]
    assert template["Globals"]["Function"]["Environment"]["Variables"][env] == name
    condition, per_stage, per_stack = name["If"]
    assert condition == "BucketsPerStage"
    text, variables = per_stack["Sub"]
    assert text.endswith("-${StackUid}") and "${Stage}" in text
    assert variables["StackUid"]["Select"][1]["Split"][1]["Select"][1]["Split"][1] == {
        "Ref": "AWS::StackId"
    }
    # the longest name within S3's 63 characters: the longest Stage, a 12-digit account
    longest = text.replace("${Stage}", "s" * 28).replace("${AWS::AccountId}", "1" * 12)
    assert len(longest.replace("${StackUid}", "0" * 8)) <= 63
    assert re.fullmatch(template["Parameters"]["Stage"]["AllowedPattern"], "s" * 28)
    assert not re.fullmatch(template["Parameters"]["Stage"]["AllowedPattern"], "s" * 29)
    assert template["Resources"][bucket]["DeletionPolicy"] == "Retain"
    assert "per-stage" in str(per_stage) or "${AWS::Region}-${Stage}" in per_stage["Sub"]


def test_the_content_events_accept_the_content_bucket_by_its_name() -> None:
    template = _template()
    statement = template["Resources"]["ContentEventsQueuePolicy"]["Properties"]["PolicyDocument"][
        "Statement"
    ][0]
    source = statement["Condition"]["ArnEquals"]["aws:SourceArn"]
    name = template["Resources"]["ContentBucket"]["Properties"]["BucketName"]
    _, stage, stack = source["If"]
    assert stage["Sub"] == "arn:${AWS::Partition}:s3:::" + name["If"][1]["Sub"]
    assert stack["Sub"][0] == "arn:${AWS::Partition}:s3:::" + name["If"][2]["Sub"][0]


def test_every_log_group_has_a_retention_and_rds_writes_to_its_own() -> None:
    created = _transformed()["Resources"]
    groups = {n: r for n, r in created.items() if r["Type"] == "AWS::Logs::LogGroup"}
    for name, group in groups.items():
        assert group["Properties"].get("RetentionInDays") == 30, name
    # the logs RDS would otherwise create itself, with no retention
    resources = _template()["Resources"]
    exports = resources["DbCluster"]["Properties"]["EnableCloudwatchLogsExports"]
    assert exports == ["postgresql"]
    db_log = resources["DbLogGroup"]["Properties"]["LogGroupName"]["Sub"]
    assert db_log == "/aws/rds/cluster/${DbCluster}/postgresql"
    assert resources["DbWriter"]["DependsOn"] == "DbLogGroup"  # before any log is written
    proxy_name = resources["DbProxy"]["Properties"]["DBProxyName"]["Sub"]
    proxy_log = resources["DbProxyLogGroup"]["Properties"]["LogGroupName"]["Sub"]
    assert proxy_log == f"/aws/rds/proxy/{proxy_name}"
    assert resources["DbProxy"]["DependsOn"] == "DbProxyLogGroup"
    # every function writes to a log group of its own (test_template.py checks its name)
    assert sum(1 for g in groups.values() if "/aws/lambda/" in str(g)) == len(
        _functions(_template())
    )


# ---------------------------------------------------------------- figures of docs/deploy.md


def test_the_resource_and_alarm_counts() -> None:
    raw = _template()["Resources"]
    created = _created(AlarmEmail="oncall@example.com")
    assert int(_figure(r"What it creates \((\d+) resources after the SAM transform")) == len(
        created
    )
    assert int(_figure(r"(\d+) in all, the rest only with")) == len(_transformed()["Resources"])
    assert int(_figure(r"from the (\d+)\s+of `template.yaml`")) == len(raw)
    tier = sum(1 for r in created.values() if r.get("Condition") in DATA_TIER)
    assert int(_figure(r"(\d+) of them the network and data tier")) == tier
    alarms = sum(1 for r in created.values() if r["Type"] == "AWS::CloudWatch::Alarm")
    assert int(_figure(r"(\d+) of them alarms;")) == alarms
    assert int(_figure(r"\| CloudWatch alarms \| (\d+) alarms")) == alarms


def test_the_concurrency_figures() -> None:
    functions = _functions(_template())
    total = sum(_reserved(name) for name in functions)
    assert int(_figure(r"functions reserve \*\*(\d+)\*\*")) == total
    assert int(_figure(r"must be at least \*\*(\d+)\*\*")) == total + 100
    assert int(_figure(r"Below (\d+): ask for an increase")) == total + 100
    assert (
        int(_figure(r"`ReserveConcurrency` \| `true` \(default\): the functions reserve (\d+)"))
        == total
    )
    assert int(_figure(r"which needs an account quota of (\d+)")) == total + 100
    ones = [n for n in functions if _reserved(n) == 1]
    assert _figure(r"1 each for the (\w+) one-at-a-time") == {10: "ten"}.get(len(ones))
    # the connection formula: P = 4 per environment, the API adds B = 2, the migration 1
    params = _template()["Parameters"]
    assert int(_figure(r"reserved concurrency of the API function \(default (\d+)")) == int(
        params["ApiReservedConcurrency"]["Default"]
    )
    assert int(_figure(r"runs at once \(default (\d+)\)")) == int(
        params["ProcessUploadConcurrency"]["Default"]
    )
    pool = {"ApiFunction": 6, "MigrateFunction": 1}
    connections = sum(
        _reserved(n) * pool.get(n, 4) for n in functions if n not in NOT_ON_THE_DATABASE
    )
    assert int(_figure(r"With the defaults: [^=]+= (\d+)")) == connections
    assert int(_figure(r"`max_connections` ≥ (\d+) at")) == math.ceil(connections / 0.9)
    (sqs,) = _sqs_sources(_template(), "SyncSearchFunction")
    assert int(_figure(r"SyncSearch MaximumConcurrency \((\d+)\)")) == int(
        sqs["ScalingConfig"]["MaximumConcurrency"]
    )
    alarm = _template()["Resources"]["DbProxyConnectionsAlarm"]["Properties"]
    assert int(_figure(r"`DbProxyConnectionsAlarm` fires at (\d+) %")) == alarm["Threshold"]


def test_the_retention_canary_and_name_figures() -> None:
    resources = _template()["Resources"]
    assert (
        int(_figure(r"flow logs kept (\d+) days"))
        == (resources["VpcFlowLogGroup"]["Properties"]["RetentionInDays"])
    )
    assert (
        int(_figure(r"access logs go to a log group kept (\d+) days"))
        == (resources["ApiAccessLogs"]["Properties"]["RetentionInDays"])
    )
    assert int(_figure(r"with a\s+retention of \*\*(\d+) days\*\*")) == 30
    assert (
        int(_figure(r"(\d+) days of backups"))
        == (resources["DbCluster"]["Properties"]["BackupRetentionPeriod"])
    )
    canary = resources["ApiCanaryDeploymentConfig"]["Properties"]["TrafficRoutingConfig"]
    assert (
        int(_figure(r"then (\d+) %\s+of the traffic goes to it"))
        == (canary["TimeBasedCanary"]["CanaryPercentage"])
    )
    assert (
        int(_figure(r"of the traffic goes to it for (\d+) minutes"))
        == (canary["TimeBasedCanary"]["CanaryInterval"])
    )
    hook = resources["DeployHookFunction"]["Properties"]["FunctionName"]["Sub"]
    longest = 64 - len(hook.replace("${AWS::StackName}", ""))
    assert int(_figure(r"The stack name must be at most (\d+) characters")) == longest
    assert int(_figure(r"Stack Name: docs\s+\(at most (\d+) characters\)")) == longest
    assert int(_figure(r"`Stage` is at most (\d+) characters")) == 28


def test_the_sizes_and_costs_count_what_the_template_creates() -> None:
    params = _template()["Parameters"]
    low, high = _figure(r"ACUs, default ([\d.]+\W\d+)\)").split(EN_DASH)
    assert (float(low), int(high)) == (
        params["DbMinCapacity"]["Default"],
        params["DbMaxCapacity"]["Default"],
    )
    assert (
        int(_figure(r"`CacheMaxDataGb`, default (\d+) GB")) == params["CacheMaxDataGb"]["Default"]
    )
    count, kind = _figure(r"\(default (\d+ \W `[a-z0-9.]+`)").split(f" {TIMES} ")
    assert (int(count), kind) == (
        params["SearchInstanceCount"]["Default"],
        f"`{params['SearchInstanceType']['Default']}`",
    )
    assert int(_figure(r"gp3 each \(default (\d+)\)")) == params["SearchVolumeSizeGb"]["Default"]
    created = _created(AlarmEmail="oncall@example.com")

    def kinds(kind: str) -> list[dict[str, Any]]:
        return [r for r in created.values() if r["Type"] == kind]

    interface = [
        r
        for r in kinds("AWS::EC2::VPCEndpoint")
        if r["Properties"].get("VpcEndpointType") == "Interface"
    ]
    assert int(_figure(r"\| VPC endpoints \| (\d+) interface endpoints")) == len(interface)
    assert int(_figure(r"\| KMS, Secrets Manager \| (\d+) keys")) == len(kinds("AWS::KMS::Key"))
    managed = sum(
        1 for r in kinds("AWS::RDS::DBCluster") if r["Properties"].get("ManageMasterUserPassword")
    )
    assert (
        int(_figure(r"\$1; (\d+) secrets")) == len(kinds("AWS::SecretsManager::Secret")) + managed
    )
    functions = len(_functions(_template()))
    assert int(_figure(r"for 7 functions; (\d+) functions today")) == functions
