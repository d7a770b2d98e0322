"""The audit trail holds (docs/compliance.md): append-only for the runtime login and
the owner, a hash chain that catches a modified, deleted or forged row, readable by
admins of its org only; an access request exports exactly the caller's data; an
erasure leaves the chain verifiable and the name nowhere.

A database of its own (the tamper tests rewrite rows on purpose), real PostgreSQL
and Redis, S3 from a private moto server (the audit bucket under Object Lock).
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
import threading
import urllib.request
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import psycopg
import pytest

from chalicelib.config import Settings
from tests.conftest import Invoker, Response, admin_sql, make_token

pytestmark = pytest.mark.integration


# ------------------------------------------------------------------ fixtures
@pytest.fixture(scope="module")
def services(settings: Settings, db_url: str, moto_endpoint: str) -> Iterator[Any]:
    from chalicelib import bootstrap

    suffix = uuid.uuid4().hex[:10]
    s3 = boto3.client("s3", endpoint_url=moto_endpoint, region_name="us-east-1")
    audit_bucket, export_bucket = f"audit-{suffix}", f"exports-{suffix}"
    s3.create_bucket(Bucket=audit_bucket, ObjectLockEnabledForBucket=True)
    s3.put_object_lock_configuration(
        Bucket=audit_bucket,
        ObjectLockConfiguration={
            "ObjectLockEnabled": "Enabled",
            "Rule": {"DefaultRetention": {"Mode": "COMPLIANCE", "Years": 7}},
        },
    )
    s3.create_bucket(Bucket=export_bucket)
    built = bootstrap.build(
        settings.model_copy(
            update={
                "database_url": db_url,
                "aws_endpoint_url": moto_endpoint,
                "audit_bucket": audit_bucket,
                "export_bucket": export_bucket,
                # personal-data fields are sealed (adapters/pii.py): a local test key
                "pii_fields": ("email", "phone"),
                "pii_local_keys": "k1:" + base64.b64encode(b"1" * 32).decode(),
                "pii_blind_key": base64.b64encode(b"b" * 32).decode(),
            }
        )
    )
    bootstrap.set_container(built)
    yield built
    bootstrap.set_container(None)
    built.close()


def api(org: str, sub: str, *roles: str) -> Invoker:
    return Invoker(make_token(org=org, sub=sub, roles=roles or ("writer",)))


def new_org() -> str:
    return f"aud-{uuid.uuid4().hex[:8]}"


def create(call: Invoker, title: str, **extra: Any) -> dict[str, Any]:
    r = call("POST", "/documents", {"title": title, **extra})
    assert r.status == 201, r
    return dict(r.json())


def problem(r: Response, status: int) -> dict[str, Any]:
    assert r.status == status, r
    assert r.headers["content-type"].startswith("application/problem+json"), r.headers
    return dict(r.json())


def writes(org: str) -> list[str]:
    """Three documents of alice in ``org``: create, change, delete (4 audit rows)."""
    alice = api(org, "alice")
    ids = [create(alice, f"note {i}")["id"] for i in range(3)]
    r = alice("PUT", f"/documents/{ids[0]}", {"title": "renamed"}, headers={"If-Match": "*"})
    assert r.status == 200, r
    assert alice("DELETE", f"/documents/{ids[1]}", headers={"If-Match": "*"}).status == 204
    chained(org)
    return ids


def chained(org: str) -> None:
    """The org's pending audit rows linked into its chain (the worker's job, done
    now: the tests below read and tamper with chained rows)."""
    from chalicelib import bootstrap

    bootstrap.container().audit.chain(org, wait=True)


# ------------------------------------------------------------------ append-only
def test_audit_rows_cannot_be_rewritten_by_the_runtime_login_nor_the_owner(
    services: Any, db_url: str
) -> None:
    org = new_org()
    writes(org)
    runtime = services.settings.runtime_database_url
    with psycopg.connect(runtime, autocommit=True) as conn:
        for statement in (
            "UPDATE audit_log SET action = 'forged' WHERE org = %(org)s",
            "DELETE FROM audit_log WHERE org = %(org)s",
            "TRUNCATE audit_log",
            "UPDATE audit_chain_heads SET last_seq = 0 WHERE org = %(org)s",
            "INSERT INTO audit_chain_heads (org, last_seq, last_hash) VALUES ('x', 0, '')",
            "INSERT INTO audit_actors (org, user_id, pseudonym) VALUES (%(org)s, 'a', 'p')",
        ):
            with conn.transaction(force_rollback=True):
                conn.execute("SELECT set_config('role', 'docs_app', true)")
                conn.execute("SELECT set_config('app.org', %(org)s, true)", {"org": org})
                with pytest.raises(psycopg.errors.InsufficientPrivilege), conn.transaction():
                    conn.execute(statement, {"org": org})
    # the owner, even with row-level security lifted for itself, is refused by the trigger
    with psycopg.connect(db_url, autocommit=True) as admin:
        for statement in (
            "UPDATE audit_log SET action = 'forged' WHERE org = %(org)s",
            "DELETE FROM audit_log WHERE org = %(org)s",
            "TRUNCATE audit_log",
        ):
            with admin.transaction(force_rollback=True):
                admin.execute("SET LOCAL ROLE docs_owner")
                admin.execute("ALTER TABLE audit_log NO FORCE ROW LEVEL SECURITY")
                with pytest.raises(psycopg.errors.RaiseException), admin.transaction():
                    admin.execute(statement, {"org": org})
    assert services.audit.verify_org(org).ok


def test_the_pseudonym_function_serves_the_transactions_org_only(services: Any) -> None:
    org = new_org()
    with psycopg.connect(services.settings.runtime_database_url, autocommit=True) as conn:
        with conn.transaction(force_rollback=True):
            conn.execute("SELECT set_config('role', 'docs_app', true)")
            with pytest.raises(psycopg.errors.RaiseException), conn.transaction():
                conn.execute("SELECT docs_audit_pseudonym('alice')")  # no org: refused
        with conn.transaction():
            conn.execute("SELECT set_config('role', 'docs_app', true)")
            conn.execute("SELECT set_config('app.org', %s, true)", (org,))
            row = conn.execute("SELECT docs_audit_pseudonym('alice')").fetchone()
            mine = conn.execute("SELECT org, pseudonym FROM audit_actors").fetchall()
    assert row is not None and mine == [(org, row[0])]


# ------------------------------------------------------------------ the chain
def test_concurrent_writes_of_one_org_chain_one_after_another(services: Any) -> None:
    from chalicelib.domain.principal import Principal

    org = new_org()
    errors: list[BaseException] = []

    def work(i: int) -> None:
        who = Principal(f"user{i % 3}", org, frozenset({"writer"}), request_id=f"r{i}")
        try:
            for j in range(5):
                services.documents.create(who, {"title": f"t{i}-{j}"})
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    report = services.audit.verify_org(org)
    assert report.ok and report.rows == 30 and report.last_seq == 30, report


def test_every_write_is_audited_with_request_id_and_before_after_versions(
    services: Any, db_url: str
) -> None:
    org = new_org()
    ids = writes(org)
    rows = admin_sql(
        db_url,
        "SELECT a.action, a.doc_id, a.prev_version, a.version, a.request_id, m.user_id, "
        "a.actor, a.details FROM audit_log a JOIN audit_actors m "
        "ON (m.org, m.pseudonym) = (a.org, a.actor) WHERE a.org = %s ORDER BY a.chain_seq",
        org,
    )
    assert [(r["action"], r["doc_id"], r["prev_version"], r["version"]) for r in rows] == [
        ("create", ids[0], None, 1),
        ("create", ids[1], None, 1),
        ("create", ids[2], None, 1),
        ("replace", ids[0], 1, 2),
        ("delete", ids[1], 1, 2),
    ]
    assert all(r["request_id"] and r["user_id"] == "alice" for r in rows)
    assert all(r["actor"].startswith("p-") for r in rows), "the chained row holds a pseudonym"
    assert all("title" not in r["details"] for r in rows), "no content in the trail"


def test_the_chain_verifies_and_a_modified_row_breaks_it(services: Any, db_url: str) -> None:
    org = new_org()
    writes(org)
    report = services.audit.verify_org(org)
    assert report.ok and report.rows == 5 and report.last_seq == 5
    admin_sql(
        db_url,
        "BEGIN; ALTER TABLE audit_log DISABLE TRIGGER audit_log_no_rewrite; "
        'UPDATE audit_log SET details = details || \'{"note": "edited"}\' '
        "WHERE org = %s AND chain_seq = 3; "
        "ALTER TABLE audit_log ENABLE TRIGGER audit_log_no_rewrite; COMMIT",
        org,
    )
    broken = services.audit.verify_org(org)
    assert not broken.ok and broken.broken_at == 3 and "modified" in (broken.reason or "")
    # every org is checked by default: the others still verify, this one does not
    reports = {r.org: r for r in services.audit.verify()}
    assert not reports[org].ok
    assert all(r.ok for o, r in reports.items() if o != org)


@pytest.mark.parametrize("where", ["middle", "last"])
def test_a_deleted_row_breaks_the_chain(services: Any, db_url: str, where: str) -> None:
    org = new_org()
    writes(org)
    seq = 2 if where == "middle" else 5
    admin_sql(
        db_url,
        "BEGIN; ALTER TABLE audit_log DISABLE TRIGGER audit_log_no_rewrite; "
        "DELETE FROM audit_log WHERE org = %s AND chain_seq = %s; "
        "ALTER TABLE audit_log ENABLE TRIGGER audit_log_no_rewrite; COMMIT",
        org,
        seq,
    )
    report = services.audit.verify_org(org)
    assert not report.ok and report.broken_at == seq, report
    assert "missing" in (report.reason or ""), report


def test_a_forged_row_inserted_past_the_trigger_breaks_the_chain(
    services: Any, db_url: str
) -> None:
    org = new_org()
    writes(org)
    admin_sql(
        db_url,
        "BEGIN; SET LOCAL session_replication_role = replica; "  # no trigger fires
        "INSERT INTO audit_log (org, actor, action, chain_seq, hash) "
        "SELECT org, actor, 'forged', chain_seq + 1, sha256(hash) FROM audit_log "
        "WHERE org = %s AND chain_seq = 5; COMMIT",
        org,
    )
    report = services.audit.verify_org(org)
    assert not report.ok and report.broken_at == 6, report


def test_the_verify_command_reports_the_break_and_exits_non_zero(
    services: Any, db_url: str, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    from devtools import cli

    org = new_org()
    writes(org)
    monkeypatch.setattr(cli, "use_local_stack", lambda **_: None)  # the fixture's container
    assert cli.main(["audit", "verify", "--org", org]) == 0
    assert json.loads(capsys.readouterr().out)["ok"] is True
    admin_sql(
        db_url,
        "BEGIN; ALTER TABLE audit_log DISABLE TRIGGER audit_log_no_rewrite; "
        "UPDATE audit_log SET action = 'nothing' WHERE org = %s AND chain_seq = 1; "
        "ALTER TABLE audit_log ENABLE TRIGGER audit_log_no_rewrite; COMMIT",
        org,
    )
    assert cli.main(["audit", "verify", "--org", org]) == 1
    out = json.loads(capsys.readouterr().out)
    assert out["ok"] is False and out["broken_at"] == 1 and out["row_id"]


# ------------------------------------------------------------------ GET /audit
def test_get_audit_is_for_admins_of_the_org_filtered_and_paginated(services: Any) -> None:
    org, other = new_org(), new_org()
    ids = writes(org)
    create(api(org, "bob"), "bob's")
    foreign = create(api(other, "eve"), "eve's")["id"]
    admin = api(org, "root", "admin")
    seen: list[int] = []
    token: str | None = None
    while True:
        query = "/audit?limit=2" + (f"&page_token={token}" if token else "")
        r = admin("GET", query)
        assert r.status == 200, r
        page = r.json()
        assert len(page["items"]) <= 2
        seen += [item["seq"] for item in page["items"]]
        token = page["next_page_token"]
        if token is None:
            break
    assert seen == list(range(6, 0, -1)), "newest first, every row once"
    items = admin("GET", f"/audit?document={ids[0]}").json()["items"]
    assert [(i["action"], i["prev_version"], i["version"]) for i in items] == [
        ("replace", 1, 2),
        ("create", None, 1),
    ]
    assert {i["actor"] for i in items} == {"alice"}
    assert {i["actor"] for i in admin("GET", "/audit?user=bob").json()["items"]} == {"bob"}
    assert admin("GET", "/audit?user=nobody").json()["items"] == []
    future = (datetime.now(UTC) + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert admin("GET", f"/audit?since={future}").json()["items"] == []
    assert len(admin("GET", "/audit?since=2020-01-01T00:00:00Z").json()["items"]) == 6
    # another org's rows are out of reach, whatever the filter
    assert admin("GET", f"/audit?document={foreign}").json()["items"] == []
    problem(api(org, "alice", "writer")("GET", "/audit"), 403)
    problem(admin("GET", "/audit?since=yesterday"), 422)
    problem(admin("GET", "/audit?page_token=forged"), 400)


# ------------------------------------------------------------------ export
def test_an_export_contains_exactly_the_callers_data(services: Any, db_url: str) -> None:
    org = new_org()
    alice, bob = api(org, "alice"), api(org, "bob")
    mine = [create(alice, "alpha")["id"], create(alice, "beta", metadata={"team": "red"})["id"]]
    theirs = create(bob, "bob secret title")["id"]
    r = alice("PUT", f"/documents/{theirs}", {"title": "edited by a"}, headers={"If-Match": "*"})
    assert r.status == 200
    create(api(new_org(), "alice"), "same name, another org")
    admin_sql(
        db_url,
        "INSERT INTO document_grants (org, doc_id, grantee, role, granted_by) VALUES "
        "(%s, %s, 'bob', 'reader', 'alice'), (%s, %s, 'alice', 'writer', 'bob'), "
        "(%s, %s, 'carol', 'reader', 'bob')",
        org, mine[0], org, theirs, org, theirs,
    )  # fmt: skip

    started = alice("POST", "/me/export")
    assert started.status == 202, started
    location = started.headers["location"]
    assert location == f"/me/export/{started.json()['id']}"
    assert alice("GET", location).json()["state"] == "pending"
    problem(bob("GET", location), 404)  # someone else's export does not exist for them
    assert services.personal_data.run_due() >= 1
    status = alice("GET", location).json()
    assert status["state"] == "ready" and status["url"].startswith("http"), status
    with urllib.request.urlopen(status["url"]) as resp:
        raw = resp.read().decode()
    archive = json.loads(raw)
    assert archive["subject"] == "alice" and archive["org"] == org
    assert sorted(d["id"] for d in archive["documents"]) == sorted(mine)
    assert {(g["doc_id"], g["grantee"]) for g in archive["grants"]} == {
        (mine[0], "bob"),
        (theirs, "alice"),
    }
    assert [(a["action"], a["document"]) for a in archive["audit"]] == [
        ("create", mine[0]),
        ("create", mine[1]),
        ("replace", theirs),
        ("export-requested", None),
    ]
    assert "bob secret" not in raw and "carol" not in raw and "another org" not in raw
    # the export itself is audited, as the requester's
    actions = [
        i["action"] for i in api(org, "root", "admin")("GET", "/audit?user=alice").json()["items"]
    ]
    assert actions[:2] == ["export-ready", "export-requested"]


def _export(services: Any, call: Invoker) -> tuple[dict[str, Any], str]:
    """Start an export, run the worker, download the archive: (archive, raw text)."""
    started = call("POST", "/me/export")
    assert started.status == 202, started
    assert services.personal_data.run_due() >= 1
    status = call("GET", started.headers["location"]).json()
    assert status["state"] == "ready", status
    with urllib.request.urlopen(status["url"]) as resp:
        raw = resp.read().decode()
    return json.loads(raw), raw


def test_an_export_opens_the_callers_personal_data_fields_and_no_one_elses(
    services: Any, db_url: str
) -> None:
    """Personal-data fields are sealed in the table; the subject's own archive holds
    them in clear (it is their data), never as envelopes, and holds no other user's
    fields, not even of a document the subject may write."""
    org = new_org()
    alice, bob = api(org, "alice"), api(org, "bob")
    mine = create(alice, "mine", metadata={"email": "alice@example.com", "team": "red"})["id"]
    gone = create(alice, "gone", metadata={"phone": "+33 1 23 45 67 89"})["id"]
    assert alice("DELETE", f"/documents/{gone}", headers={"If-Match": "*"}).status == 204
    theirs = create(bob, "theirs", metadata={"email": "bob@example.com"})["id"]
    admin_sql(
        db_url,
        "INSERT INTO document_grants (org, doc_id, grantee, role, granted_by) "
        "VALUES (%s, %s, 'alice', 'writer', 'bob')",
        org, theirs,
    )  # fmt: skip
    stored = admin_sql(db_url, "SELECT metadata::text AS m FROM documents WHERE org = %s", org)
    assert all("example.com" not in r["m"] and "+33" not in r["m"] for r in stored)

    archive, raw = _export(services, alice)
    docs = {d["id"]: d for d in archive["documents"]}
    assert set(docs) == {mine, gone}
    assert docs[mine]["metadata"] == {"email": "alice@example.com", "team": "red"}
    assert docs[gone]["metadata"] == {"phone": "+33 1 23 45 67 89"} and docs[gone]["deleted"]
    assert '"$enc"' not in raw, "no sealed envelope in an archive"
    assert "bob@example.com" not in raw

    archive, raw = _export(services, bob)
    assert [d["id"] for d in archive["documents"]] == [theirs]
    assert archive["documents"][0]["metadata"] == {"email": "bob@example.com"}
    assert "alice@example.com" not in raw and "+33" not in raw and '"$enc"' not in raw


# ------------------------------------------------------------------ erasure
def test_erasure_reassigns_scrubs_and_leaves_the_chain_verifiable(
    services: Any, db_url: str
) -> None:
    org = new_org()
    alice, bob = api(org, "alice"), api(org, "bob")
    admin = api(org, "root", "admin")
    doc = create(alice, "plan", metadata={"email": "a@example.com", "team": "red"})["id"]
    r = alice(
        "PUT",
        f"/documents/{doc}",
        {"title": "plan 2", "metadata": {"email": "x@y.z", "phone": "1"}},
        headers={"If-Match": "*"},
    )
    assert r.status == 200, r
    create(bob, "bob's")
    admin_sql(
        db_url,
        "INSERT INTO document_grants (org, doc_id, grantee, role, granted_by) "
        "VALUES (%s, %s, 'alice', 'reader', 'bob')",
        org, doc,
    )  # fmt: skip

    r = admin("POST", "/users/alice/erasure", {"documents": "reassign:bob"})
    assert r.status == 200, r
    assert r.json()["documents"] == {"mode": "reassign", "count": 1, "to": "bob"}
    got = bob("GET", f"/documents/{doc}").json()
    assert got["owner"] == "bob" and got["metadata"] == {}
    assert services.audit.verify_org(org).ok
    items = admin("GET", "/audit").json()["items"]
    assert items[0]["action"] == "erasure" and items[0]["actor"] == "root"
    subject = items[0]["details"]["subject"]
    assert subject.startswith("p-")
    assert admin("GET", "/audit?user=alice").json()["items"] == []
    formerly = [i for i in items if i["actor"] == subject]
    assert len(formerly) == 2 and all(i["pseudonymous"] for i in formerly)
    by_pseudonym = admin("GET", f"/audit?user={subject}").json()["items"]
    assert [i["seq"] for i in by_pseudonym] == [i["seq"] for i in formerly]
    # the name is nowhere in the org's rows any more, nor the scrubbed fields
    for table in ("audit_log", "audit_actors", "documents", "document_versions",
                  "document_grants", "export_jobs", "content_uploads"):  # fmt: skip
        leaks = admin_sql(
            db_url,
            f"SELECT to_jsonb(t)::text AS row FROM {table} t WHERE org = %s "
            "AND (to_jsonb(t)::text LIKE '%%alice%%' OR to_jsonb(t)::text LIKE '%%example%%' "
            "OR to_jsonb(t)::text LIKE '%%x@y.z%%')",
            org,
        )
        assert leaks == [], (table, leaks)


def test_erasure_deletes_documents_when_asked(services: Any) -> None:
    org = new_org()
    carol, admin = api(org, "carol"), api(org, "root", "admin")
    doc = create(carol, "temporary")["id"]
    r = admin("POST", "/users/carol/erasure", {"documents": "delete"})
    assert r.status == 200 and r.json()["documents"]["count"] == 1, r
    problem(admin("GET", f"/documents/{doc}"), 404)
    assert services.audit.verify_org(org).ok


def test_an_erased_grantee_is_named_by_no_audit_row(services: Any, db_url: str) -> None:
    """Grant rows name their grantee: the chain stores the grantee's pseudonym
    (migration 0012), so an erasure leaves the id in no chained row."""
    org = new_org()
    alice, admin = api(org, "alice"), api(org, "root", "admin")
    doc = create(alice, "shared", visibility="private")["id"]
    assert alice("PUT", f"/documents/{doc}/grants/gina", {"role": "reader"}).status == 200
    assert api(org, "gina", "reader")("GET", f"/documents/{doc}").status == 200
    shown = admin("GET", f"/audit?document={doc}").json()["items"]
    assert [i["details"]["grantee"] for i in shown if i["action"] == "grant.put"] == ["gina"]

    assert admin("POST", "/users/gina/erasure", {"documents": "delete"}).status == 200
    # the grant went as a versioned write: no cached ACL still lets her read
    problem(api(org, "gina", "reader")("GET", f"/documents/{doc}"), 404)
    assert alice("GET", f"/documents/{doc}").json()["version"] == 3  # create, grant, revoke
    rows = admin_sql(db_url, "SELECT l::text AS row FROM audit_log l WHERE org = %s", org)
    assert rows and not [r for r in rows if "gina" in r["row"]]
    shown = admin("GET", f"/audit?document={doc}").json()["items"]
    granted = [i["details"]["grantee"] for i in shown if i["action"] == "grant.put"]
    assert len(granted) == 1 and granted[0].startswith("p-")
    assert services.audit.verify_org(org).ok


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"documents": "purge"},
        {"documents": "reassign:"},
        {"documents": "reassign:dave"},  # the user being erased
        {"documents": "reassign:nobody-known"},
        {"documents": "delete", "also": 1},
        ["delete"],
    ],
)
def test_erasure_refuses_bad_bodies_with_a_problem(services: Any, body: Any) -> None:
    org = new_org()
    create(api(org, "dave"), "x")
    detail = problem(api(org, "root", "admin")("POST", "/users/dave/erasure", body), 422)
    assert detail["detail"]


def test_erasure_is_for_admins_only(services: Any) -> None:
    org = new_org()
    doc = create(api(org, "dave"), "x")["id"]
    writer = api(org, "erin", "writer")
    problem(writer("POST", "/users/dave/erasure", {"documents": "delete"}), 403)
    assert writer("GET", f"/documents/{doc}").status == 200


# ------------------------------------------------------------------ export to S3
def test_closed_periods_are_exported_once_to_the_locked_bucket(
    services: Any, moto_endpoint: str
) -> None:
    from chalicelib.service_layer.audit import AuditService

    org = new_org()
    writes(org)
    tomorrow = datetime.now(UTC) + timedelta(days=1)
    audit = AuditService(
        services.audit.trail, page_secret="x", archive=services.audit._archive,
        clock=lambda: tomorrow,
    )  # fmt: skip
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    with pytest.raises(ValueError, match="closed"):
        services.audit.export_period(org, today)  # today is still open
    manifest = audit.export_period(org, today)
    assert manifest is not None and manifest["last_seq"] == 5
    assert audit.export_period(org, today) is None, "exported once"

    s3 = boto3.client("s3", endpoint_url=moto_endpoint, region_name="us-east-1")
    bucket = services.settings.audit_bucket
    obj = manifest["objects"][0]
    data = s3.get_object(Bucket=bucket, Key=obj["key"])["Body"].read()
    assert hashlib.sha256(data).hexdigest() == obj["sha256"]
    lines = [json.loads(line) for line in gzip.decompress(data).decode().splitlines()]
    assert [row["seq"] for row in lines] == [1, 2, 3, 4, 5]
    assert lines[-1]["hash"] == manifest["last_hash"] == manifest["chain_head"]["hash"]
    head = s3.head_object(Bucket=bucket, Key=obj["key"])
    assert head["ObjectLockMode"] == "COMPLIANCE"
    assert head["ObjectLockRetainUntilDate"] > datetime.now(UTC) + timedelta(days=365 * 7 - 2)
    versions = s3.list_object_versions(Bucket=bucket, Prefix=obj["key"]).get("Versions", [])
    assert len(versions) == 1
    stored = json.loads(
        s3.get_object(Bucket=bucket, Key=obj["key"].replace("audit.jsonl.gz", "manifest.json"))[
            "Body"
        ].read()
    )
    assert stored["objects"] == manifest["objects"]


def test_the_export_function_runs_on_its_schedule(services: Any) -> None:
    from devtools.events import LambdaContext
    from functions import audit_export

    result = audit_export.handler({"source": "aws.events"}, LambdaContext.for_function("audit"))
    assert result["exported"] >= 0 and isinstance(result["objects"], list)


def test_a_chain_rewritten_consistently_by_the_owner_differs_from_the_exports(
    services: Any, db_url: str
) -> None:
    """The database owner can recompute every hash after an edit (and the head): the
    chain then verifies on its own, but not against the manifests under Object Lock."""
    from chalicelib.service_layer.audit import AuditService

    org = new_org()
    writes(org)
    tomorrow = datetime.now(UTC) + timedelta(days=1)
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    exporter = AuditService(
        services.audit.trail, page_secret="x", archive=services.audit._archive,
        clock=lambda: tomorrow,
    )  # fmt: skip
    assert exporter.export_period(org, today) is not None
    assert services.audit.verify_org(org, against_exports=True).ok
    admin_sql(
        db_url,
        "BEGIN; SET LOCAL session_replication_role = replica; "  # the owner's triggers off
        'UPDATE audit_log SET details = details || \'{"note": "rewritten"}\' '
        "WHERE org = %s AND chain_seq = 2; "
        "SELECT set_config('bench.org', %s, true); "
        "DO $$ DECLARE r audit_log; prev bytea := ''::bytea; BEGIN "
        "FOR r IN SELECT * FROM audit_log WHERE org = current_setting('bench.org') "
        "ORDER BY chain_seq LOOP prev := sha256(prev || audit_canonical(r)); "
        "UPDATE audit_log SET hash = prev WHERE id = r.id; END LOOP; "
        "UPDATE audit_chain_heads SET last_hash = prev WHERE org = current_setting('bench.org'); "
        "END $$; COMMIT",
        org,
        org,
    )
    assert services.audit.verify_org(org).ok, "consistent on its own"
    report = services.audit.verify_org(org, against_exports=True)
    assert not report.ok and report.broken_at == 5 and "exported" in (report.reason or "")


# ------------------------------------------------------------------ coverage
# Every audited action, and what its row must say: who acted, and for a
# document action the version before and after.  ``source`` says which request id
# the row carries: "http" (the server's id of the API call, echoed as
# X-Request-Id), "job" (the id of the request that started the export), "run"
# (the scheduled purge run's id).
AUDITED = [
    # action                 actor     prev  after source
    ("create",               "alice",  None, 1,    "http"),
    ("replace",              "alice",  1,    2,    "http"),
    ("change",               "alice",  2,    3,    "http"),
    ("restore-version:1",    "alice",  3,    4,    "http"),
    ("grant.put",            "alice",  4,    5,    "http"),
    ("grant.delete",         "alice",  5,    6,    "http"),
    ("visibility.change",    "alice",  6,    7,    "http"),
    ("delete",               "alice",  7,    8,    "http"),
    ("restore",              "root",   8,    9,    "http"),
    ("consent-changed",      "alice",  None, None, "http"),
    ("export-requested",     "alice",  None, None, "http"),
    ("export-ready",         "alice",  None, None, "job"),
    ("erasure-delete",       "root",   1,    2,    "http"),
    ("erasure",              "root",   None, None, "http"),
    ("purge",                "system", 2,    3,    "run"),
]  # fmt: skip


@pytest.fixture(scope="module")
def audited(services: Any, db_url: str) -> dict[str, Any]:
    """One org where each action of ``AUDITED`` happened once: its rows by action,
    and the request ids they should carry."""
    org = new_org()
    alice, root = api(org, "alice"), api(org, "root", "admin")
    ids: dict[str, str] = {}

    def call(who: Invoker, action: str, method: str, path: str, body: Any = None,
             **headers: str) -> Response:  # fmt: skip
        r = who(method, path, body, headers={"If-Match": "*", **headers})
        assert r.status < 300, (action, r)
        ids[action] = r.headers["x-request-id"]
        return r

    doc = call(alice, "create", "POST", "/documents", {"title": "t1"}).json()["id"]
    path = f"/documents/{doc}"
    call(alice, "replace", "PUT", path, {"title": "t2"})
    call(alice, "change", "PATCH", path, {"title": "t3"},
         **{"Content-Type": "application/merge-patch+json"})  # fmt: skip
    call(alice, "restore-version:1", "POST", f"{path}/versions/1/restore")
    call(alice, "grant.put", "PUT", f"{path}/grants/bob", {"role": "reader"})
    call(alice, "grant.delete", "DELETE", f"{path}/grants/bob")
    call(alice, "visibility.change", "PUT", f"{path}/visibility", {"visibility": "private"})
    call(alice, "delete", "DELETE", path)
    call(root, "restore", "POST", f"{path}/restore")
    call(alice, "consent-changed", "PUT", "/me/consents", {"consents": {"notifications": True}})
    job = call(alice, "export-requested", "POST", "/me/export").json()["id"]
    assert services.personal_data.run_due() >= 1
    create(api(org, "carol"), "carol's")
    call(root, "erasure-delete", "POST", "/users/carol/erasure", {"documents": "delete"})
    ids["erasure"] = ids["erasure-delete"]
    # purge: a document deleted (version 2) past the restore window
    old = create(alice, "old")["id"]
    assert alice("DELETE", f"/documents/{old}", headers={"If-Match": "*"}).status == 204
    admin_sql(db_url, "UPDATE documents SET deleted_at = now() - interval '40 days' "
                      "WHERE org = %s AND id = %s", org, old)  # fmt: skip
    run = f"purge-run-{uuid.uuid4().hex[:8]}"
    assert services.purge.run(request_id=run).purged >= 1
    ids["run"] = run

    rows = admin_sql(
        db_url,
        "SELECT a.action, coalesce(m.user_id, a.actor) AS actor, a.doc_id, a.prev_version, "
        "a.version, a.request_id, a.details FROM audit_log a LEFT JOIN audit_actors m "
        "ON (m.org, m.pseudonym) = (a.org, a.actor) WHERE a.org = %s ORDER BY a.chain_seq",
        org,
    )
    by_action: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        by_action.setdefault(row["action"], []).append(row)
    assert services.audit.verify_org(org).ok
    return {"rows": by_action, "ids": ids, "doc": doc, "old": old, "job": job}


@pytest.mark.parametrize(("action", "actor", "prev", "after", "source"), AUDITED)
def test_every_action_is_audited_with_actor_request_id_and_versions(
    audited: dict[str, Any], action: str, actor: str, prev: int | None, after: int | None,
    source: str,
) -> None:  # fmt: skip
    rows = audited["rows"].get(action, [])
    if action in ("create", "delete"):  # carol's and the purged document's are not the case
        rows = [r for r in rows if r["doc_id"] == audited["doc"]]
    assert len(rows) == 1, (action, rows)
    row = rows[0]
    # erasure rows name the subject's pseudonym only: their actor is the admin
    assert row["actor"] == actor, row
    assert (row["prev_version"], row["version"]) == (prev, after), row
    ids = audited["ids"]
    expected = {"http": ids.get(action), "job": ids["export-requested"], "run": ids["run"]}
    assert row["request_id"] == expected[source], row
    if after is not None:
        assert row["doc_id"] is not None
    if action == "purge":
        assert row["doc_id"] == audited["old"]
    if action.startswith("export"):
        assert row["details"]["job"] == audited["job"]
