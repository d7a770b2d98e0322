"""template.yaml's audit trail in Athena and its data-events trail (docs/compliance.md):
the Glue table reads exactly what the export writes, where it writes it; the named
queries are docs/athena/*.sql word for word; the trail records the object events of
exactly the buckets whose access-log skip says so, into a locked bucket CloudTrail
may write to."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

from chalicelib.domain.audit import ChainRow
from chalicelib.service_layer.audit import _row_json, export_key
from chalicelib.settings_groups import AuditSettings
from tests.unit.test_template import _sub, _template

ROOT = Path(__file__).resolve().parents[2]
QUERIES = ROOT / "docs" / "athena"
TRAIL_BUCKETS = {"AuditBucket", "ExportsBucket", "ContentBucket"}


def _resources() -> dict[str, Any]:
    resources: dict[str, Any] = _template()["Resources"]
    return resources


def _of_type(kind: str) -> dict[str, dict[str, Any]]:
    return {name: r for name, r in _resources().items() if r["Type"] == kind}


def _table() -> dict[str, Any]:
    table: dict[str, Any] = _resources()["AuditAthenaTable"]["Properties"]["TableInput"]
    return table


def _row() -> ChainRow:
    at = datetime(2026, 12, 3, 10, 0, tzinfo=UTC)
    return ChainRow("acme", 1, 7, at, "p-1", "create", "d1", 1, None, "r1", "{}", b"\0")


# ------------------------------------------------------------------ the table
def test_the_table_has_a_column_for_each_exported_field_in_order() -> None:
    columns = [c["Name"] for c in _table()["StorageDescriptor"]["Columns"]]
    assert columns == list(_row_json(_row())), "the Glue table and the export disagree"
    types = {c["Name"]: c["Type"] for c in _table()["StorageDescriptor"]["Columns"]}
    for name, value in _row_json(_row()).items():
        expected = "bigint" if isinstance(value, int) else "string"
        if value is None:
            expected = "bigint"  # prev_version: an int when set
        assert types[name] == expected, name
    partitions = [p["Name"] for p in _table()["PartitionKeys"]]
    assert partitions == ["org_key", "day"] and not set(partitions) & set(columns)


def test_the_partitions_are_projected_from_the_exporters_keys() -> None:
    """The location template, filled in with an org and a day as projection fills it,
    is the folder of the object the export writes for that org and day."""
    params = _table()["Parameters"]
    assert params["projection.enabled"] == "true"
    assert params["projection.org_key.type"] == "injected"  # every query names its org
    assert params["projection.day.type"] == "date"
    java_to_strftime = {"yyyy": "%Y", "MM": "%m", "dd": "%d"}
    fmt = re.sub(
        "yyyy|MM|dd", lambda m: java_to_strftime[m.group(0)], params["projection.day.format"]
    )
    template = _sub(params["storage.location.template"])
    assert template.startswith("s3://${AuditBucket}/")
    env = _template()["Globals"]["Function"]["Environment"]["Variables"]
    prefix = env.get("DOCS_AUDIT_EXPORT_PREFIX", AuditSettings().export_prefix)
    for org in ("acme", "a/b c%", "Ünïcode"):
        day = datetime(2026, 12, 3, tzinfo=UTC)
        folder = (
            template.removeprefix("s3://${AuditBucket}/")
            .replace("${!org_key}", quote(org, safe=""))
            .replace("${!day}", day.strftime(fmt))
        )
        assert export_key(prefix, org, day, "audit.jsonl.gz") == folder + "audit.jsonl.gz"
    location = _sub(_table()["StorageDescriptor"]["Location"])
    assert location == f"s3://${{AuditBucket}}/{prefix}/"
    serde = _table()["StorageDescriptor"]["SerdeInfo"]
    assert serde["SerializationLibrary"] == "org.openx.data.jsonserde.JsonSerDe"


# ------------------------------------------------------------------ the queries
def test_the_named_queries_are_the_sql_files_word_for_word() -> None:
    queries = _of_type("AWS::Athena::NamedQuery")
    files = {p.stem: p.read_text() for p in QUERIES.glob("*.sql")}
    assert {q["Properties"]["Name"] for q in queries.values()} == set(files)
    for name, query in queries.items():
        props = query["Properties"]
        assert props["QueryString"] == files[props["Name"]], (
            f"{name}: copy docs/athena/{props['Name']}.sql into template.yaml (indented)"
        )
        assert props["Database"] == {"Ref": "AuditAthenaDatabase"}
        assert props["WorkGroup"] == {"Ref": "AuditWorkGroup"}
        # every query is about one org, so partition projection can inject it
        assert "org_key = ?" in props["QueryString"], name


def test_the_workgroup_enforces_encrypted_results_in_a_bucket_of_their_own() -> None:
    resources = _resources()
    config = resources["AuditWorkGroup"]["Properties"]["WorkGroupConfiguration"]
    assert config["EnforceWorkGroupConfiguration"] is True
    assert config["BytesScannedCutoffPerQuery"] > 0
    results = config["ResultConfiguration"]
    assert results["EncryptionConfiguration"] == {
        "EncryptionOption": "SSE_KMS",
        "KmsKey": {"GetAtt": "AuditKey.Arn"},
    }
    assert _sub(results["OutputLocation"]).startswith("s3://${AuditQueryResultsBucket}/")
    bucket = resources["AuditQueryResultsBucket"]["Properties"]
    (rule,) = bucket["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert rule["ServerSideEncryptionByDefault"]["SSEAlgorithm"] == "aws:kms"
    assert all(bucket["PublicAccessBlockConfiguration"].values())
    assert bucket["VersioningConfiguration"] == {"Status": "Enabled"}
    (expiry,) = bucket["LifecycleConfiguration"]["Rules"]
    assert expiry["ExpirationInDays"] <= 30
    _assert_tls_only(resources["AuditQueryResultsBucketPolicy"], "AuditQueryResultsBucket")


# ------------------------------------------------------------------ the trail
def _statements(policy: dict[str, Any]) -> list[dict[str, Any]]:
    statements: list[dict[str, Any]] = policy["Properties"]["PolicyDocument"]["Statement"]
    return statements


def _assert_tls_only(policy: dict[str, Any], bucket: str) -> None:
    assert policy["Properties"]["Bucket"] == {"Ref": bucket}
    (deny,) = [s for s in _statements(policy) if s["Effect"] == "Deny"]
    assert deny["Principal"] == "*" and deny["Action"] == "s3:*"
    assert deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}


def test_the_trail_records_object_events_of_exactly_the_sensitive_buckets() -> None:
    trail = _resources()["DataEventsTrail"]
    props = trail["Properties"]
    assert trail["Condition"] == "DataEventsTrailOn"
    assert props["EnableLogFileValidation"] is True and props["IsLogging"] is True
    assert props["KMSKeyId"] == {"GetAtt": "DataEventsTrailKey.Arn"}
    (selector,) = props["AdvancedEventSelectors"]
    fields = {f["Field"]: f for f in selector["FieldSelectors"]}
    assert fields["eventCategory"]["Equals"] == ["Data"]
    assert fields["resources.type"]["Equals"] == ["AWS::S3::Object"]
    arns = [_sub(a) for a in fields["resources.ARN"]["StartsWith"]]
    covered = {re.fullmatch(r"\$\{(\w+)\.Arn\}/", a).group(1) for a in arns}  # type: ignore[union-attr]
    assert covered == TRAIL_BUCKETS and len(arns) == len(TRAIL_BUCKETS)


def test_the_access_log_skips_cite_the_trail_on_exactly_the_buckets_it_covers() -> None:
    citing = set()
    for name, bucket in _of_type("AWS::S3::Bucket").items():
        skips = bucket.get("Metadata", {}).get("checkov", {}).get("skip", [])
        for skip in skips:
            if skip["id"] == "CKV_AWS_18" and "CloudTrail data event" in skip["comment"]:
                assert "DataEventsTrail" in skip["comment"], name
                citing.add(name)
    assert citing == TRAIL_BUCKETS


def test_the_trail_delivers_to_a_locked_bucket_only_it_may_write_to() -> None:
    resources = _resources()
    props = resources["DataEventsTrail"]["Properties"]
    assert props["S3BucketName"] == {"Ref": "DataEventsTrailBucket"}
    trail_arn = "arn:${AWS::Partition}:cloudtrail:${AWS::Region}:${AWS::AccountId}:trail/" + _sub(
        props["TrailName"]
    )
    bucket = resources["DataEventsTrailBucket"]["Properties"]
    assert bucket["ObjectLockEnabled"] is True
    assert bucket["ObjectLockConfiguration"]["Rule"]["DefaultRetention"]["Mode"] == "COMPLIANCE"
    assert bucket["VersioningConfiguration"] == {"Status": "Enabled"}
    assert all(bucket["PublicAccessBlockConfiguration"].values())
    policy = resources["DataEventsTrailBucketPolicy"]
    _assert_tls_only(policy, "DataEventsTrailBucket")
    allowed = {s["Sid"]: s for s in _statements(policy) if s["Effect"] == "Allow"}
    assert set(allowed) == {"CloudTrailAclCheck", "CloudTrailWrite"}
    acl, write = allowed["CloudTrailAclCheck"], allowed["CloudTrailWrite"]
    for statement in (acl, write):
        assert statement["Principal"] == {"Service": "cloudtrail.amazonaws.com"}
        assert _sub(statement["Condition"]["StringEquals"]["aws:SourceArn"]) == trail_arn
    assert acl["Action"] == "s3:GetBucketAcl"
    assert acl["Resource"] == {"GetAtt": "DataEventsTrailBucket.Arn"}
    assert write["Action"] == "s3:PutObject"
    assert _sub(write["Resource"]) == "${DataEventsTrailBucket.Arn}/AWSLogs/${AWS::AccountId}/*"
    assert write["Condition"]["StringEquals"]["s3:x-amz-acl"] == "bucket-owner-full-control"
    # the trail's key lets CloudTrail encrypt for this trail only
    key = resources["DataEventsTrailKey"]["Properties"]["KeyPolicy"]["Statement"]
    (encrypts,) = [s for s in key if s.get("Sid") == "CloudTrailEncryptsLogs"]
    assert _sub(encrypts["Condition"]["StringEquals"]["aws:SourceArn"]) == trail_arn
    assert resources["DataEventsTrail"]["DependsOn"] == "DataEventsTrailBucketPolicy"
    for name in ("DataEventsTrailKey", "DataEventsTrailBucket", "DataEventsTrailBucketPolicy"):
        assert resources[name]["Condition"] == "DataEventsTrailOn", name
