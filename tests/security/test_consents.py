"""Consent records hold (docs/compliance.md, "Consent records"): per user and
purpose, in the caller's org only; every change appended and audited; an admin
reads a user's, nobody else does; the subject's export holds the history; an
erasure leaves the history tied to nobody.

A database of its own, real PostgreSQL and Redis through the real handler, S3
from a private moto server (the export archive).
"""

from __future__ import annotations

import json
import urllib.request
import uuid
from collections.abc import Iterator
from typing import Any

import boto3
import pytest

from chalicelib.config import Settings
from tests.conftest import Invoker, Response, admin_sql, make_token

pytestmark = pytest.mark.integration

PURPOSES = ("notifications", "analytics", "newsletter")
POLICY = "2026-12"


@pytest.fixture(scope="module")
def services(settings: Settings, db_url: str, moto_endpoint: str) -> Iterator[Any]:
    from chalicelib import bootstrap

    export_bucket = f"exports-{uuid.uuid4().hex[:10]}"
    s3 = boto3.client("s3", endpoint_url=moto_endpoint, region_name="us-east-1")
    s3.create_bucket(Bucket=export_bucket)
    built = bootstrap.build(
        settings.model_copy(
            update={
                "database_url": db_url,
                "aws_endpoint_url": moto_endpoint,
                "export_bucket": export_bucket,
                "consent_purposes": PURPOSES,
                "consent_policy_version": POLICY,
            }
        )
    )
    bootstrap.set_container(built)
    yield built
    bootstrap.set_container(None)
    built.close()


def api(org: str, sub: str, *roles: str) -> Invoker:
    return Invoker(make_token(org=org, sub=sub, roles=roles or ("reader",)))


def new_org() -> str:
    return f"cns-{uuid.uuid4().hex[:8]}"


def problem(r: Response, status: int) -> dict[str, Any]:
    assert r.status == status, r
    assert r.headers["content-type"].startswith("application/problem+json"), r.headers
    return dict(r.json())


def granted(r: Response) -> dict[str, bool]:
    assert r.status == 200, r
    return {purpose: state["granted"] for purpose, state in r.json()["consents"].items()}


def test_nothing_is_granted_until_the_user_grants_it(services: Any) -> None:
    r = api(new_org(), "alice")("GET", "/me/consents")
    assert r.status == 200, r
    assert r.headers["cache-control"].startswith("no-store")
    assert r.json() == {
        "consents": {p: {"granted": False, "at": None, "policy_version": None} for p in PURPOSES}
    }


def test_a_change_is_recorded_audited_and_is_the_state_at_once(services: Any, db_url: str) -> None:
    org = new_org()
    alice = api(org, "alice")
    r = alice("PUT", "/me/consents", {"consents": {"notifications": True, "analytics": False}})
    assert r.status == 200, r
    state = r.json()["consents"]
    assert state["notifications"]["granted"] is True
    assert state["notifications"]["policy_version"] == POLICY
    assert state["notifications"]["at"].endswith("Z")
    assert state["analytics"]["granted"] is False and state["analytics"]["at"]
    assert state["newsletter"] == {"granted": False, "at": None, "policy_version": None}
    assert alice("GET", "/me/consents").json() == r.json()
    assert services.consents.granted(org, "alice", "notifications")
    assert not services.consents.granted(org, "alice", "analytics")
    assert not services.consents.granted(org, "alice", "newsletter")

    # a withdrawal is a new record: the history keeps both, the state is the newest
    r = alice("PUT", "/me/consents", {"consents": {"notifications": False},
                                      "policy_version": POLICY})  # fmt: skip
    assert granted(r) == {"notifications": False, "analytics": False, "newsletter": False}
    assert not services.consents.granted(org, "alice", "notifications")
    rows = admin_sql(
        db_url,
        "SELECT purpose, granted, policy_version, subject, actor, request_id "
        "FROM consent_records WHERE org = %s ORDER BY id",
        org,
    )
    assert [(r["purpose"], r["granted"]) for r in rows] == [
        ("notifications", True), ("analytics", False), ("notifications", False),
    ]  # fmt: skip
    assert all(r["subject"].startswith("p-") and r["actor"] == r["subject"] for r in rows)
    assert all(r["request_id"] for r in rows)
    # each change is one audit row, by the user, with what was chosen
    audit = api(org, "root", "admin")("GET", "/audit?user=alice").json()["items"]
    assert [(i["action"], i["details"]) for i in audit] == [
        ("consent-changed", {"consents": {"notifications": False}, "policy_version": POLICY}),
        ("consent-changed",
         {"consents": {"notifications": True, "analytics": False}, "policy_version": POLICY}),
    ]  # fmt: skip
    assert audit[0]["request_id"] == rows[-1]["request_id"]


@pytest.mark.parametrize(
    ("body", "loc"),
    [
        ({"consents": {"marketing": True}}, ["body", "consents", "marketing"]),
        ({"consents": {"notifications": "yes"}}, ["body", "consents", "notifications"]),
        ({"consents": {"notifications": 1}}, ["body", "consents", "notifications"]),
        ({"consents": {}}, ["body", "consents"]),
        ({"consents": ["notifications"]}, ["body", "consents"]),
        ({"notifications": True}, ["body", "consents"]),
        ({"consents": {"notifications": True}, "policy_version": "0"}, ["body", "policy_version"]),
        ({"consents": {"notifications": True}, "extra": 1}, ["body", "extra"]),
        ([], ["body", "consents"]),
    ],
)
def test_a_bad_body_is_a_422_naming_the_field_and_records_nothing(
    services: Any, db_url: str, body: Any, loc: list[str]
) -> None:
    org = new_org()
    detail = problem(api(org, "alice")("PUT", "/me/consents", body), 422)
    assert loc in [e["loc"] for e in detail["errors"]], detail
    assert admin_sql(db_url, "SELECT id FROM consent_records WHERE org = %s", org) == []


def test_one_bad_purpose_refuses_the_whole_change(services: Any) -> None:
    alice = api(new_org(), "alice")
    body = {"consents": {"notifications": True, "marketing": True}}
    problem(alice("PUT", "/me/consents", body), 422)
    assert not any(granted(alice("GET", "/me/consents")).values())


def test_consents_are_the_callers_org_only(services: Any) -> None:
    org, other = new_org(), new_org()
    r = api(org, "alice")("PUT", "/me/consents", {"consents": {"analytics": True}})
    assert r.status == 200, r
    # the same user id in another org is another user: nothing granted there
    assert not any(granted(api(other, "alice")("GET", "/me/consents")).values())
    assert not any(granted(api(other, "root", "admin")("GET", "/users/alice/consents")).values())
    assert not services.consents.granted(other, "alice", "analytics")
    assert granted(api(org, "root", "admin")("GET", "/users/alice/consents"))["analytics"]


def test_only_an_admin_reads_another_users_consents(services: Any) -> None:
    org = new_org()
    assert api(org, "bob")("PUT", "/me/consents", {"consents": {"newsletter": True}}).status == 200
    for role in ("reader", "writer"):
        problem(api(org, "carol", role)("GET", "/users/bob/consents"), 403)
    r = api(org, "root", "admin")("GET", "/users/bob/consents")
    assert r.status == 200, r
    assert r.json()["user"] == "bob" and r.json()["consents"]["newsletter"]["granted"] is True
    problem(api(org, "root", "admin")("GET", "/users/%20bob/consents"), 422)


def test_the_export_holds_the_consent_history(services: Any) -> None:
    org = new_org()
    alice, bob = api(org, "alice"), api(org, "bob")
    assert alice("PUT", "/me/consents", {"consents": {"analytics": True}}).status == 200
    assert alice("PUT", "/me/consents", {"consents": {"analytics": False}}).status == 200
    assert bob("PUT", "/me/consents", {"consents": {"newsletter": True}}).status == 200
    started = alice("POST", "/me/export")
    assert started.status == 202, started
    assert services.personal_data.run_due() >= 1
    status = alice("GET", started.headers["location"]).json()
    assert status["state"] == "ready", status
    with urllib.request.urlopen(status["url"]) as resp:
        archive = json.loads(resp.read().decode())
    assert [(c["purpose"], c["granted"], c["policy_version"], c["recorded_by"])
            for c in archive["consents"]] == [
        ("analytics", True, POLICY, "alice"), ("analytics", False, POLICY, "alice"),
    ]  # fmt: skip
    assert all(c["at"] and c["request_id"] for c in archive["consents"])


def test_erasure_leaves_the_history_tied_to_nobody(services: Any, db_url: str) -> None:
    org = new_org()
    alice, admin = api(org, "alice"), api(org, "root", "admin")
    body = {"consents": {"notifications": True, "analytics": True}}
    assert alice("PUT", "/me/consents", body).status == 200
    before = admin_sql(db_url, "SELECT count(*) AS n FROM consent_records WHERE org = %s", org)

    r = admin("POST", "/users/alice/erasure", {"documents": "delete"})
    assert r.status == 200, r
    # the user's consents are gone from every read; the records stay, as pseudonyms
    assert not any(granted(admin("GET", "/users/alice/consents")).values())
    assert not services.consents.granted(org, "alice", "notifications")
    after = admin_sql(db_url, "SELECT count(*) AS n FROM consent_records WHERE org = %s", org)
    assert after == before
    leaks = admin_sql(
        db_url,
        "SELECT to_jsonb(c)::text AS row FROM consent_records c WHERE org = %s "
        "AND (to_jsonb(c)::text LIKE '%%alice%%' OR subject IN "
        "(SELECT pseudonym FROM audit_actors WHERE org = %s))",
        org, org,
    )  # fmt: skip
    assert leaks == []
    # a user of the same id later starts with no consent
    assert not any(granted(api(org, "alice")("GET", "/me/consents")).values())
