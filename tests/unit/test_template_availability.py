"""template.yaml: no single point of failure, backups off the region, SLO burn-rate alarms.

docs/dr.md and docs/slo.md describe what these tests check: the Aurora reader,
the 3-AZ search domain with dedicated masters, the AWS Backup plan and its copy
to a second region, S3 replication of the content and audit buckets, the
multi-window multi-burn-rate alarms, the budget on the dashboard, and the
alarms that must fire on silence.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from tests.unit.test_template import _if, _sub, _template, composed
from tests.unit.test_template_data_tier import _failed_rules

PAGE = {"If": ["CreateAlarmTopic", {"Ref": "AlarmTopic"}, {"Ref": "AlarmTopicArn"}]}
# (composite, long window s, short window s, 5xx % threshold, action): docs/slo.md
AVAILABILITY = [
    ("SloAvailabilityFastBurnAlarm", 3600, 300, 1.44, PAGE),
    ("SloAvailabilitySlowBurnAlarm", 21600, 1800, 0.6, PAGE),
    ("SloAvailabilityTicketAlarm", 86400, 7200, 0.3, {"Ref": "SloTicketTopic"}),
]


def _resources() -> dict[str, Any]:
    resources: dict[str, Any] = _template()["Resources"]
    return resources


def _props(name: str) -> dict[str, Any]:
    props: dict[str, Any] = _resources()[name]["Properties"]
    return props


def _windows(composite: str) -> list[dict[str, Any]]:
    """The alarms a composite alarm ANDs, in the order its rule names them."""
    rule = _sub(_props(composite)["AlarmRule"])
    assert re.fullmatch(r'ALARM\("\$\{\w+\.Arn\}"\) AND ALARM\("\$\{\w+\.Arn\}"\)', rule), rule
    return [_props(name) for name in re.findall(r"\$\{(\w+)\.Arn\}", rule)]


# ------------------------------------------------------------------ the data tier


def test_the_reader_is_on_for_every_stage_but_a_sandbox() -> None:
    conditions = _template()["Conditions"]
    assert conditions["Production"] == {"Equals": [{"Ref": "Sandbox"}, "false"]}
    assert conditions["DbReaderOn"] == {
        "And": [
            {"Condition": "DatabaseOn"},
            {
                "Or": [
                    {"Equals": [{"Ref": "DbReaderInstance"}, "true"]},
                    {"And": [{"Equals": [{"Ref": "DbReaderInstance"}, "auto"]}, {"Condition": "Production"}]},
                ]
            },
        ]
    }  # fmt: skip
    reader = _resources()["DbReader"]
    assert reader["Condition"] == "DbReaderOn"
    props, writer = reader["Properties"], _props("DbWriter")
    assert props["DBClusterIdentifier"] == writer["DBClusterIdentifier"] == {"Ref": "DbCluster"}
    assert props["DBInstanceClass"] == writer["DBInstanceClass"]
    assert props["PromotionTier"] == 0  # the first to be promoted
    # a second AZ: subnet B's in a created network (the writer is RDS-placed)
    az, given = _if(props["AvailabilityZone"], "NetworkOn")
    assert az == {"GetAtt": "PrivateSubnetB.AvailabilityZone"}
    assert given == {"Ref": "AWS::NoValue"}
    assert _template()["Parameters"]["DbReaderInstance"]["Default"] == "auto"


def test_the_search_domain_spans_three_azs_with_dedicated_masters() -> None:
    params = _template()["Parameters"]
    assert 3 in params["SearchInstanceCount"]["AllowedValues"]
    assert params["SearchInstanceCount"]["Default"] == 3
    cluster = _props("SearchDomain")["ClusterConfig"]
    assert cluster["ZoneAwarenessEnabled"] is True
    assert _if(cluster["ZoneAwarenessConfig"]["AvailabilityZoneCount"], "Production") == (3, 2)
    assert _if(cluster["InstanceCount"], "Production") == ({"Ref": "SearchInstanceCount"}, 2)
    assert _if(cluster["DedicatedMasterEnabled"], "Production") == (True, False)
    assert _if(cluster["DedicatedMasterCount"], "Production") == (3, {"Ref": "AWS::NoValue"})
    master = _if(cluster["DedicatedMasterType"], "Production")[0]
    assert master == {"Ref": "SearchMasterInstanceType"}
    created, given = _if(_props("SearchDomain")["VPCOptions"]["SubnetIds"], "NetworkOn")
    three, two = _if(created, "Production")
    assert three == [{"Ref": f"PrivateSubnet{x}"} for x in "ABC"]
    assert two == [{"Ref": f"PrivateSubnet{x}"} for x in "AB"]
    assert [len(branch) for branch in _if(given, "Production")] == [3, 2]


@pytest.mark.parametrize(
    ("given", "refused"),
    [
        ({}, False),
        ({"SearchInstanceCount": "6"}, False),
        ({"SearchInstanceCount": "2"}, True),
        ({"SearchInstanceCount": "4"}, True),
        ({"SearchInstanceCount": "2", "Sandbox": "true"}, False),
        ({"SearchInstanceCount": "2", "CreateSearch": "false"}, False),
    ],
)
def test_a_search_domain_outside_a_sandbox_has_a_multiple_of_three_nodes(
    given: dict[str, str], refused: bool
) -> None:
    extra = {"OpenSearchUrl": "https://s", "OpenSearchDomainArn": "arn:aws:es:::d"}
    if given.get("CreateSearch") == "false":
        given = {**given, **extra}
    assert ("ProductionSearchOverThreeAzs" in _failed_rules(**given)) is refused


# ------------------------------------------------------------------ backups and replication


def test_the_database_is_backed_up_daily_and_copied_to_a_second_region() -> None:
    plan = _props("DatabaseBackupPlan")["BackupPlan"]
    (rule,) = plan["BackupPlanRule"]
    assert rule["TargetBackupVault"] == {"Ref": "DatabaseBackupVault"}
    assert rule["Lifecycle"]["DeleteAfterDays"] == 35
    copies, none = _if(rule["CopyActions"], "DrBackupCopyOn")
    assert none == {"Ref": "AWS::NoValue"}
    assert copies == [
        {"DestinationBackupVaultArn": {"Ref": "DrBackupVaultArn"}, "Lifecycle": {"DeleteAfterDays": 35}}
    ]  # fmt: skip
    assert _template()["Conditions"]["DrBackupCopyOn"] == {
        "Not": [{"Equals": [{"Ref": "DrBackupVaultArn"}, ""]}]
    }
    selection = _props("DatabaseBackupSelection")
    assert selection["BackupPlanId"] == {"Ref": "DatabaseBackupPlan"}
    (target,) = selection["BackupSelection"]["Resources"]
    assert _sub(target).endswith(":cluster:${DbCluster}")
    vault = _props("DatabaseBackupVault")
    assert vault["EncryptionKeyArn"] == {"GetAtt": "DataKey.Arn"}
    for name in ("DatabaseBackupVault", "DatabaseBackupPlan", "DatabaseBackupSelection"):
        assert _resources()[name]["Condition"] == "DatabaseOn", name


@pytest.mark.parametrize(
    ("bucket", "target", "key"),
    [
        ("ContentBucket", "DrContentBucketArn", "DrContentKeyArn"),
        ("AuditBucket", "DrAuditBucketArn", "DrAuditKeyArn"),
    ],
)
def test_the_buckets_replicate_to_the_second_region(bucket: str, target: str, key: str) -> None:
    props = _props(bucket)
    assert props["VersioningConfiguration"]["Status"] == "Enabled"
    config, none = _if(props["ReplicationConfiguration"], "DrReplicationOn")
    assert none == {"Ref": "AWS::NoValue"}
    assert config["Role"] == {"GetAtt": "BucketReplicationRole.Arn"}
    (rule,) = config["Rules"]
    assert rule["Status"] == "Enabled" and rule["Filter"] == {"Prefix": ""}
    assert rule["DeleteMarkerReplication"] == {"Status": "Disabled"}
    assert rule["SourceSelectionCriteria"]["SseKmsEncryptedObjects"]["Status"] == "Enabled"
    destination = rule["Destination"]
    assert destination["Bucket"] == {"Ref": target}
    assert destination["EncryptionConfiguration"]["ReplicaKmsKeyID"] == {"Ref": key}
    assert destination["ReplicationTime"] == {"Status": "Enabled", "Time": {"Minutes": 15}}


def test_the_replication_role_reads_object_lock_settings_and_uses_both_regions_keys() -> None:
    role = _resources()["BucketReplicationRole"]
    assert role["Condition"] == "DrReplicationOn"
    (policy,) = role["Properties"]["Policies"]
    grants = {
        action: statement["Resource"]
        for statement in policy["PolicyDocument"]["Statement"]
        for action in ([statement["Action"]] if isinstance(statement["Action"], str) else statement["Action"])
    }  # fmt: skip
    assert {"s3:GetObjectRetention", "s3:GetObjectLegalHold"} <= set(grants)
    assert {"s3:ReplicateObject", "s3:GetObjectVersionForReplication"} <= set(grants)
    assert "s3:ReplicateDelete" not in grants  # deletions stay in the first region
    assert grants["kms:Decrypt"] == [{"GetAtt": "ContentKey.Arn"}, {"GetAtt": "AuditKey.Arn"}]
    assert grants["kms:Encrypt"] == [{"Ref": "DrContentKeyArn"}, {"Ref": "DrAuditKeyArn"}]
    # the source buckets by the names the buckets give themselves (a Ref would be a cycle)
    text = json.dumps(grants["s3:GetObjectRetention"])
    assert "docs-content-" in text and "docs-audit-" in text
    assert _props("AuditBucket")["ObjectLockConfiguration"]["ObjectLockEnabled"] == "Enabled"


def test_replication_needs_both_buckets_and_both_keys() -> None:
    arns = {
        "DrContentBucketArn": "arn:aws:s3:::dr-content",
        "DrContentKeyArn": "arn:aws:kms:us-west-2:123456789012:key/a",
        "DrAuditBucketArn": "arn:aws:s3:::dr-audit",
        "DrAuditKeyArn": "arn:aws:kms:us-west-2:123456789012:key/b",
    }
    assert "ReplicationNeedsItsKeys" not in _failed_rules()
    assert "ReplicationNeedsItsKeys" not in _failed_rules(**arns)
    assert "ReplicationNeedsItsKeys" in _failed_rules(**{**arns, "DrAuditKeyArn": ""})


# ------------------------------------------------------------------ SLO alarms


@pytest.mark.parametrize(("composite", "long_s", "short_s", "threshold", "action"), AVAILABILITY)
def test_availability_burn_rate_alarms_and_two_windows(
    composite: str, long_s: int, short_s: int, threshold: float, action: dict[str, Any]
) -> None:
    props = _props(composite)
    assert _resources()[composite]["Type"] == "AWS::CloudWatch::CompositeAlarm"
    assert props["AlarmActions"] == props["OKActions"] == [action]
    periods = []
    for window in _windows(composite):
        assert "AlarmActions" not in window  # the composite notifies
        assert (window["Threshold"], window["ComparisonOperator"]) == (
            threshold,
            "GreaterThanThreshold",
        )
        assert window["EvaluationPeriods"] == 1 and window["TreatMissingData"] == "notBreaching"
        stats = {m["Id"]: m["MetricStat"] for m in window["Metrics"] if "MetricStat" in m}
        assert {s["Metric"]["MetricName"] for s in stats.values()} == {"5XXError", "Count"}
        (period,) = {s["Period"] for s in stats.values()}
        periods.append(period)
        (ratio,) = [m for m in window["Metrics"] if m.get("ReturnData")]
        assert ratio["Expression"] == "IF(requests > 0, 100 * errors / requests, 0)"
    assert periods == [long_s, short_s]


@pytest.mark.parametrize("kind", ["Read", "Write"])
def test_latency_burn_rate_alarms_page_for_reads_and_writes_apart(kind: str) -> None:
    for speed, (long_s, short_s), threshold in (
        ("FastBurn", (3600, 300), 14.4),
        ("SlowBurn", (21600, 1800), 6),
    ):
        composite = f"Slo{kind}Latency{speed}Alarm"
        assert _props(composite)["AlarmActions"] == [PAGE]
        periods = []
        for window in _windows(composite):
            (stat,) = [m["MetricStat"] for m in window["Metrics"] if "MetricStat" in m]
            assert stat["Metric"]["MetricName"] == f"{kind}Latency"
            assert stat["Stat"] == "PR(:200)"  # the share of requests within 200 ms
            (slow,) = [m for m in window["Metrics"] if m.get("ReturnData")]
            assert slow["Expression"] == "100 - fast"
            assert window["Threshold"] == threshold
            periods.append(stat["Period"])
        assert periods == [long_s, short_s]


def test_every_window_alarm_belongs_to_a_composite() -> None:
    windows = composed(_template())
    slo = {
        n for n, r in _resources().items() if n.startswith("Slo") and r["Type"].endswith("::Alarm")
    }
    assert slo == set(windows)
    assert len(slo) == 2 * 3 + 2 * 2 * 2


def test_alarms_that_must_fire_on_silence_treat_missing_data_as_breaching() -> None:
    for name in ("SearchSyncLagAlarm", "RealtimeLagAlarm", "AuditExportStaleAlarm", "CanaryAlarm"):
        assert _props(name)["TreatMissingData"] == "breaching", name


def test_the_dashboard_shows_the_availability_budget_left_over_30_days() -> None:
    body = _sub(_props("Dashboard")["DashboardBody"])
    (widget,) = [w for w in re.findall(r'\{"type": "metric".*?\}\}', body, re.S) if "budget" in w]
    assert '"period": 2592000' in widget  # 30 days
    assert "100 * (1 - (bad / all) / 0.001)" in widget  # the 99.9 % SLO's budget
