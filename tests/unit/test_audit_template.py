"""template.yaml's audit resources: the locked bucket, the export functions, their alarms."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.unit.test_template import RESERVED_ONE, _template

ROOT = Path(__file__).resolve().parents[2]


def _resources() -> dict[str, Any]:
    resources: dict[str, Any] = _template()["Resources"]
    return resources


def test_the_audit_bucket_is_locked_for_seven_years_in_compliance_mode() -> None:
    bucket = _resources()["AuditBucket"]
    assert bucket["DeletionPolicy"] == bucket["UpdateReplacePolicy"] == "Retain"
    props = bucket["Properties"]
    assert props["ObjectLockEnabled"] is True
    lock = props["ObjectLockConfiguration"]
    assert lock["ObjectLockEnabled"] == "Enabled"
    assert lock["Rule"]["DefaultRetention"] == {"Mode": "COMPLIANCE", "Years": 7}
    assert props["VersioningConfiguration"] == {"Status": "Enabled"}
    (rule,) = props["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert rule["ServerSideEncryptionByDefault"]["KMSMasterKeyID"] == {"GetAtt": "AuditKey.Arn"}
    assert all(props["PublicAccessBlockConfiguration"].values())
    assert _resources()["AuditKey"]["Properties"]["EnableKeyRotation"] is True


def test_the_exports_expire_and_the_functions_run_on_schedules() -> None:
    resources = _resources()
    (rule,) = resources["ExportsBucket"]["Properties"]["LifecycleConfiguration"]["Rules"]
    assert rule["ExpirationInDays"] == 7
    for name, handler in (
        ("AuditExportFunction", "functions.audit_export.handler"),
        ("ExportWorkerFunction", "functions.export_worker.handler"),
    ):
        props = resources[name]["Properties"]
        assert props["Handler"] == handler
        assert props["ReservedConcurrentExecutions"] == RESERVED_ONE
        (event,) = props["Events"].values()
        assert event["Type"] == "Schedule"
    env = _template()["Globals"]["Function"]["Environment"]["Variables"]
    assert env["DOCS_AUDIT_BUCKET"] == resources["AuditBucket"]["Properties"]["BucketName"]
    assert env["DOCS_EXPORT_BUCKET"] == resources["ExportsBucket"]["Properties"]["BucketName"]


def test_the_stale_export_alarm_watches_the_metric_the_function_emits() -> None:
    alarm = _resources()["AuditExportStaleAlarm"]["Properties"]
    source = (ROOT / "functions" / "audit_export.py").read_text()
    assert f'count("{alarm["MetricName"]}")' in source
    assert alarm["TreatMissingData"] == "breaching"
    assert alarm["Period"] * alarm["EvaluationPeriods"] == 24 * 3600
    props = _resources()["AuditExportFunction"]["Properties"]
    assert alarm["Dimensions"] == [
        {"Name": "service", "Value": props["Environment"]["Variables"]["POWERTOOLS_SERVICE_NAME"]}
    ]
