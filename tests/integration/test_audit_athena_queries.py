"""The Athena named queries (docs/athena/*.sql, template.yaml) on the real export files
of a local run, with DuckDB.

Two orgs act through the real service (PostgreSQL, Redis, S3 on moto): writes by two
users, a grant given, used and revoked, a visibility change, a personal-data export,
an erasure. The real audit export writes their day to the audit bucket; its objects
(manifests included, as Athena would find them) are downloaded as they are keyed,
and a DuckDB view stands in for the Glue table: the template's columns and types,
and the partition columns read from the key by the template's location template.
Each query then runs word for word, its ``?`` bound in order (as Athena's execution
parameters are), and must return exactly the rows the trail holds.

The one dialect difference: DuckDB spells Athena's ``json_extract_scalar``
``json_extract_string``; a macro names it as Athena does.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import boto3
import duckdb
import pytest

from chalicelib.config import Settings
from tests.conftest import Invoker, admin_sql, make_token
from tests.unit.test_template import _sub, _template

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
DUCK_TYPES = {"string": "VARCHAR", "bigint": "BIGINT"}


def _sql(name: str) -> str:
    return (ROOT / "docs" / "athena" / f"{name}.sql").read_text()


@pytest.fixture(scope="module")
def services(settings: Settings, db_url: str, moto_endpoint: str) -> Iterator[Any]:
    from chalicelib import bootstrap

    suffix = uuid.uuid4().hex[:10]
    s3 = boto3.client("s3", endpoint_url=moto_endpoint, region_name="us-east-1")
    audit_bucket, export_bucket = f"audit-{suffix}", f"exports-{suffix}"
    s3.create_bucket(Bucket=audit_bucket, ObjectLockEnabledForBucket=True)
    s3.create_bucket(Bucket=export_bucket)
    built = bootstrap.build(
        settings.model_copy(
            update={
                "database_url": db_url,
                "aws_endpoint_url": moto_endpoint,
                "audit_bucket": audit_bucket,
                "export_bucket": export_bucket,
            }
        )
    )
    bootstrap.set_container(built)
    yield built
    bootstrap.set_container(None)
    built.close()


def _api(org: str, sub: str, *roles: str) -> Invoker:
    return Invoker(make_token(org=org, sub=sub, roles=roles or ("writer",)))


def _ok(r: Any) -> Any:
    assert r.status < 300, r
    return r


def _pseudonym(db_url: str, org: str, user: str) -> str:
    (row,) = admin_sql(
        db_url, "SELECT pseudonym FROM audit_actors WHERE org = %s AND user_id = %s", org, user
    )
    return str(row["pseudonym"])


def _activity(org: str, *, title: str) -> dict[str, Any]:
    """One org's audited day: alice writes and shares, bob writes through his grant,
    alice revokes it and closes the document, alice exports her data, carol is erased."""
    alice, bob = _api(org, "alice"), _api(org, "bob")
    doc = _ok(alice("POST", "/documents", {"title": title}))
    doc_id = doc.json()["id"]
    path = f"/documents/{doc_id}"
    _ok(alice("PUT", f"{path}/grants/bob", {"role": "writer"}))
    _ok(bob("PUT", path, {"title": f"{title} (bob)"}, headers={"If-Match": "*"}))
    _ok(alice("DELETE", f"{path}/grants/bob"))
    _ok(alice("PUT", f"{path}/visibility", {"visibility": "private"}))
    other = _ok(alice("POST", "/documents", {"title": "another"})).json()["id"]
    job = _ok(alice("POST", "/me/export")).json()["id"]
    _ok(_api(org, "carol")("POST", "/documents", {"title": "carol's"}))
    return {"doc": doc_id, "other": other, "job": job}


@pytest.fixture(scope="module")
def run(services: Any, db_url: str, moto_endpoint: str, tmp_path_factory: Any) -> dict[str, Any]:
    """Two orgs' day through the real service, exported by the real export, downloaded."""
    from chalicelib.service_layer.audit import AuditService

    tag = uuid.uuid4().hex[:8]
    orgs = [f"ath-{tag}", f"ath-{tag}.two"]
    runs = {org: _activity(org, title=f"plan {i}") for i, org in enumerate(orgs)}
    assert services.personal_data.run_due() >= 2  # both exports: export-ready rows
    for org in orgs:
        runs[org]["pseudonyms"] = {
            user: _pseudonym(db_url, org, user) for user in ("alice", "bob", "carol")
        }
        _ok(_api(org, "root", "admin")("POST", "/users/carol/erasure", {"documents": "delete"}))

    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    exporter = AuditService(
        services.audit.trail, page_secret="x", archive=services.audit._archive,
        clock=lambda: today + timedelta(days=1, minutes=5),
    )  # fmt: skip
    for org in orgs:
        assert exporter.export_period(org, today) is not None

    s3 = boto3.client("s3", endpoint_url=moto_endpoint, region_name="us-east-1")
    bucket, root = services.settings.audit_bucket, tmp_path_factory.mktemp("audit-bucket")
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix="audit/")["Contents"]]
    assert len(keys) == 4, keys  # per org: the day's rows and its manifest
    for key in keys:
        (root / key).parent.mkdir(parents=True, exist_ok=True)
        (root / key).write_bytes(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
    return {"orgs": orgs, "runs": runs, "root": root, "day": today, "db_url": db_url}


@pytest.fixture(scope="module")
def athena(run: dict[str, Any]) -> Any:
    """DuckDB with ``audit_log`` as the Glue table reads the bucket."""
    table = _template()["Resources"]["AuditAthenaTable"]["Properties"]["TableInput"]
    columns = {c["Name"]: DUCK_TYPES[c["Type"]] for c in table["StorageDescriptor"]["Columns"]}
    # s3://${AuditBucket}/audit/${!org_key}/${!day}/ -> a pattern over the local path
    location = _sub(table["Parameters"]["storage.location.template"])
    pattern = re.escape(location.removeprefix("s3://${AuditBucket}/"))
    names = [p["Name"] for p in table["PartitionKeys"]]
    assert table["Parameters"]["projection.day.format"] == "yyyy/MM/dd"
    for name, part in (("org_key", "[^/]+"), ("day", r"\d{4}/\d{2}/\d{2}")):
        pattern = pattern.replace(re.escape("${!" + name + "}"), f"({part})")
    con = duckdb.connect()
    con.execute("CREATE MACRO json_extract_scalar(j, p) AS json_extract_string(j, p)")
    files = str(run["root"] / "audit" / "*" / "*" / "*" / "*" / "*")
    partitions = ", ".join(
        f"regexp_extract(filename, '{pattern}', {i + 1}) AS {name}" for i, name in enumerate(names)
    )
    con.execute(
        f"CREATE VIEW audit_log AS SELECT * EXCLUDE (filename), {partitions} "
        f"FROM read_json('{files}', format = 'newline_delimited', columns = {columns!r}, "
        "filename = true, ignore_errors = true)"
    )
    return con


def _query(athena: Any, name: str, *params: Any) -> list[dict[str, Any]]:
    cursor = athena.execute(_sql(name), list(params))
    fields = [d[0] for d in cursor.description]
    return [dict(zip(fields, row, strict=True)) for row in cursor.fetchall()]


def _trail(run: dict[str, Any], org: str, where: str, *args: Any) -> list[dict[str, Any]]:
    """The org's rows in PostgreSQL (as stored: pseudonymous actors), oldest first."""
    return admin_sql(
        run["db_url"],
        "SELECT actor, action, doc_id, prev_version, version, request_id, details "
        f"FROM audit_log WHERE org = %s AND {where} ORDER BY chain_seq",
        org, *args,
    )  # fmt: skip


def test_the_view_reads_every_exported_row_and_the_manifests_as_empty_rows(
    athena: Any, run: dict[str, Any]
) -> None:
    for org in run["orgs"]:
        stored = admin_sql(run["db_url"], "SELECT count(*) AS n FROM audit_log WHERE org = %s", org)
        got = athena.execute(
            "SELECT count(*) FROM audit_log WHERE org_key = ? AND seq IS NOT NULL AND org = ?",
            [org, org],
        ).fetchone()
        assert got == (stored[0]["n"],)
    day = run["day"].strftime("%Y/%m/%d")
    assert athena.execute("SELECT DISTINCT day FROM audit_log").fetchall() == [(day,)]
    empty = athena.execute("SELECT count(*) FROM audit_log WHERE seq IS NULL").fetchone()
    assert empty[0] > 0, "the manifests' lines are read, as rows of NULLs"


def test_document_activity_names_who_changed_the_document(athena: Any, run: dict[str, Any]) -> None:
    for org in run["orgs"]:
        mine = run["runs"][org]
        names = {v: k for k, v in mine["pseudonyms"].items()}
        rows = _query(athena, "document_activity", org, mine["doc"])
        assert [(names[r["actor"]], r["action"]) for r in rows] == [
            ("alice", "create"),
            ("alice", "grant.put"),
            ("bob", "replace"),
            ("alice", "grant.delete"),
            ("alice", "visibility.change"),
        ]
        stored = _trail(run, org, "doc_id = %s", mine["doc"])
        assert [(r["request_id"], r["prev_version"], r["version"]) for r in rows] == [
            (s["request_id"], s["prev_version"], s["version"]) for s in stored
        ]
    # the same query for a document of another org, or under another org's key: nothing
    first, second = run["orgs"]
    assert _query(athena, "document_activity", first, run["runs"][second]["doc"]) == []


def test_user_activity_is_everything_the_pseudonym_did(athena: Any, run: dict[str, Any]) -> None:
    for org in run["orgs"]:
        mine = run["runs"][org]
        bob = _query(athena, "user_activity", org, mine["pseudonyms"]["bob"])
        assert [(r["action"], r["document"], r["version"]) for r in bob] == [
            ("replace", mine["doc"], 3)
        ]
        alice = mine["pseudonyms"]["alice"]
        rows = _query(athena, "user_activity", org, alice)
        stored = _trail(run, org, "actor = %s", alice)
        assert [(r["action"], r["document"], r["request_id"]) for r in rows] == [
            (s["action"], s["doc_id"], s["request_id"]) for s in stored
        ]
        assert [r["action"] for r in rows] == [
            "create", "grant.put", "grant.delete", "visibility.change", "create",
            "export-requested", "export-ready",
        ]  # fmt: skip
    first, second = run["orgs"]
    assert _query(athena, "user_activity", first, run["runs"][second]["pseudonyms"]["alice"]) == []


def test_grant_changes_lists_the_periods_grants_and_visibility_changes(
    athena: Any, run: dict[str, Any]
) -> None:
    day = run["day"]
    today, yesterday = day.strftime("%Y/%m/%d"), (day - timedelta(days=1)).strftime("%Y/%m/%d")
    for org in run["orgs"]:
        mine = run["runs"][org]
        alice, bob = mine["pseudonyms"]["alice"], mine["pseudonyms"]["bob"]
        rows = _query(athena, "grant_changes", org, today, today)
        assert [
            (r["actor"], r["document"], r["action"], r["grantee"], r["granted_role"],
             r["previous_role"], r["visibility_from"], r["visibility_to"])
            for r in rows
        ] == [
            (alice, mine["doc"], "grant.put", bob, "writer", None, None, None),
            (alice, mine["doc"], "grant.delete", bob, None, "writer", None, None),
            (alice, mine["doc"], "visibility.change", None, None, None, "org", "private"),
        ]  # fmt: skip
        assert _query(athena, "grant_changes", org, yesterday, yesterday) == []
        assert len(_query(athena, "grant_changes", org, yesterday, today)) == 3


def test_exports_and_erasures_lists_the_periods_requests(athena: Any, run: dict[str, Any]) -> None:
    today = run["day"].strftime("%Y/%m/%d")
    for org in run["orgs"]:
        mine = run["runs"][org]
        alice, carol = mine["pseudonyms"]["alice"], mine["pseudonyms"]["carol"]
        rows = _query(athena, "exports_and_erasures", org, today, today)
        root = _pseudonym(run["db_url"], org, "root")
        got = [
            (r["actor"], r["action"], r["export_job"], r["export_error"], r["erased_subject"])
            for r in rows
        ]
        assert got == [
            (alice, "export-requested", mine["job"], None, None),
            (alice, "export-ready", mine["job"], None, None),
            (root, "erasure-delete", None, None, carol),
            (root, "erasure", None, None, carol),
        ], got
        assert rows[2]["document"] is not None and rows[3]["document"] is None


def test_the_pseudonym_command_gives_the_queries_parameters(
    services: Any, run: dict[str, Any], athena: Any, capsys: Any, monkeypatch: Any
) -> None:
    """``cli audit pseudonym``: what user_activity takes for a user, until the erasure."""
    from devtools import cli

    monkeypatch.setattr(cli, "use_local_stack", lambda **_: None)  # the fixture's container
    org = run["orgs"][1]
    assert cli.main(["audit", "pseudonym", "--org", org, "--user", "bob"]) == 0
    found = json.loads(capsys.readouterr().out)
    assert found == {
        "org": org, "org_key": quote(org, safe=""), "user": "bob",
        "pseudonym": run["runs"][org]["pseudonyms"]["bob"],
    }  # fmt: skip
    rows = _query(athena, "user_activity", found["org_key"], found["pseudonym"])
    assert [r["action"] for r in rows] == ["replace"]
    # an erased user has none any more; a user of another org is not found either
    assert cli.main(["audit", "pseudonym", "--org", org, "--user", "carol"]) == 1
    assert services.audit.pseudonym(run["orgs"][0], "nobody-here") is None
    assert services.audit.pseudonym(org, "alice") != services.audit.pseudonym(
        run["orgs"][0], "alice"
    )
