"""Access reviews (docs/compliance.md, "Access reviews"): the org's effective access by
document and by user, JSON and CSV, admins only and one org only, stale grants
flagged; attestations recorded append-only and audited.

Real PostgreSQL and Redis through the Lambda handler (tests/conftest.py).
"""

from __future__ import annotations

import csv
import io
import uuid
from typing import Any

import psycopg
import pytest

from tests.conftest import Invoker, admin_connection, make_token

pytestmark = pytest.mark.integration


class Org:
    """One org: an owner, an admin, a writer and a reader, two grantees."""

    def __init__(self) -> None:
        self.name = f"org-{uuid.uuid4().hex[:8]}"
        self.owner = self.api("olga", "writer")
        self.admin = self.api("ada", "admin")
        self.writer = self.api("will", "writer")
        self.reader = self.api("rita", "reader")
        self.gary = self.api("gary", "writer")

    def api(self, sub: str, *roles: str) -> Invoker:
        return Invoker(make_token(org=self.name, sub=sub, roles=roles))

    def document(self, visibility: str, title: str = "t") -> str:
        r = self.owner("POST", "/documents", {"title": title, "visibility": visibility})
        assert r.status == 201, r
        return str(r.json()["id"])

    def grant(self, doc_id: str, user: str, role: str) -> None:
        r = self.owner("PUT", f"/documents/{doc_id}/grants/{user}", {"role": role})
        assert r.status == 200, r


def _review(api: Invoker, query: str = "", **kw: Any) -> Any:
    r = api("GET", f"/access-review{query}", **kw)
    assert r.status == 200, r
    return r


def _all_items(api: Invoker, view: str, limit: int = 2) -> list[dict[str, Any]]:
    """Every item, following next_page_token."""
    items: list[dict[str, Any]] = []
    query = f"?view={view}&limit={limit}"
    for _ in range(50):
        page = _review(api, query).json()
        items += page["items"]
        if page["next_page_token"] is None:
            return items
        query = f"?view={view}&limit={limit}&page_token={page['next_page_token']}"
    raise AssertionError("the pages did not end")


def test_documents_view_names_owner_grants_and_the_role_rule(container: Any) -> None:
    org = Org()
    private, open_ = org.document("private"), org.document("org")
    org.grant(private, "gary", "writer")
    org.grant(private, "rita", "reader")
    org.grant(open_, "rita", "writer")

    items = {i["document"]: i for i in _all_items(org.admin, "documents")}
    assert set(items) == {private, open_}  # paged (limit 2 over 2 docs: one page) in full
    p = items[private]
    assert p["visibility"] == "private" and p["owner"] == "olga"
    assert p["readers"] == {"role": "admin", "users": ["olga", "gary", "rita"]}
    assert p["writers"] == {"role": "admin", "users": ["olga", "gary"]}
    assert [(g["user"], g["role"], g["granted_by"], g["stale"]) for g in p["grants"]] == [
        ("gary", "writer", "olga", False),
        ("rita", "reader", "olga", False),
    ]
    o = items[open_]
    assert o["readers"] == {"role": "reader", "users": ["olga", "rita"]}
    assert o["writers"] == {"role": "writer", "users": ["olga", "rita"]}


def test_pages_follow_keyset_tokens_bound_to_the_view(container: Any) -> None:
    org = Org()
    docs = sorted(org.document("org") for _ in range(5))
    assert [i["document"] for i in _all_items(org.admin, "documents", limit=2)] == docs
    page = _review(org.admin, "?limit=2").json()
    # a token of the documents view is no token of the users view
    r = org.admin("GET", f"/access-review?view=users&page_token={page['next_page_token']}")
    assert r.status == 400, r
    assert org.admin("GET", "/access-review?view=groups").status == 422


def test_users_view_lists_every_known_user_with_what_they_reach(container: Any) -> None:
    org = Org()
    private = org.document("private")
    org.grant(private, "gary", "reader")
    # will is known from the audit trail only (he created and deleted a document)
    r = org.writer("POST", "/documents", {"title": "gone"})
    assert org.writer("DELETE", f"/documents/{r.json()['id']}").status == 204

    rows = _all_items(org.admin, "users", limit=1)
    by_user = {(r["user"], r["document"]): r for r in rows}
    assert by_user[("olga", private)]["access"] == "write"
    assert by_user[("olga", private)]["via"] == "owner"
    gary = by_user[("gary", private)]
    assert (gary["access"], gary["via"], gary["role"], gary["stale"]) == (
        "read", "grant", "reader", False,
    )  # fmt: skip
    assert by_user[("will", None)]["via"] == "role" and by_user[("will", None)]["access"] is None
    assert [r["user"] for r in rows] == sorted(r["user"] for r in rows)


def test_csv_by_document_and_by_user(container: Any) -> None:
    org = Org()
    private, open_ = org.document("private"), org.document("org")
    org.grant(private, "=cmd", "reader")  # a formula-looking user id stays text

    r = _review(org.admin, "", headers={"Accept": "text/csv"})
    assert r.headers["content-type"].startswith("text/csv")
    lines = list(csv.DictReader(io.StringIO(r.text)))
    assert list(lines[0]) == [
        "document", "visibility", "owner", "subject", "access", "via", "role", "granted_by",
        "granted_at", "last_activity", "stale",
    ]  # fmt: skip
    got = {(row["document"], row["subject"], row["access"], row["via"]) for row in lines}
    assert got == {
        (private, "role:admin", "write", "role"),
        (private, "olga", "write", "owner"),
        (private, "'=cmd", "read", "grant"),
        (open_, "role:reader", "read", "role"),
        (open_, "role:writer", "write", "role"),
        (open_, "olga", "write", "owner"),
    }
    grant = next(row for row in lines if row["via"] == "grant")
    assert grant["stale"] == "false" and grant["granted_by"] == "olga"

    r = _review(org.admin, "?view=users&limit=1", headers={"Accept": "text/csv"})
    first = list(csv.DictReader(io.StringIO(r.text)))
    assert len(first) == 1 and first[0]["user"] == "'=cmd"
    assert r.headers["link"].startswith("</access-review?view=users&limit=1&page_token=")
    assert r.headers["link"].endswith('>; rel="next"')


def test_only_admins_and_only_their_org(container: Any) -> None:
    org, other = Org(), Org()
    org.document("private")
    theirs = other.document("private")
    for api in (org.owner, org.writer, org.reader):
        assert api("GET", "/access-review").status == 403
        assert api("GET", "/access-review", headers={"Accept": "text/csv"}).status == 403
        r = api("POST", "/access-review/attestations", {"notes": "x"})
        assert r.status == 403, r
    docs = [i["document"] for i in _all_items(org.admin, "documents")]
    assert theirs not in docs and len(docs) == 1
    users = {r["user"] for r in _all_items(org.admin, "users")}
    assert users == {"olga"}
    assert org.admin("GET", "/access-review", token=None).status == 401


def test_stale_grants_are_flagged(container: Any) -> None:
    org = Org()
    doc = org.document("private")
    org.grant(doc, "gary", "writer")  # old, but gary wrote the document today
    org.grant(doc, "rita", "reader")  # old, and nothing audited since: stale
    with admin_connection(container) as conn:
        conn.execute(
            "UPDATE document_grants SET granted_at = now() - interval '100 days' "
            "WHERE org = %s AND doc_id = %s",
            (org.name, doc),
        )
    r = org.gary("PATCH", f"/documents/{doc}", {"title": "by gary"},
                 headers={"If-Match": "*", "Content-Type": "application/merge-patch+json"})  # fmt: skip
    assert r.status == 200, r

    page = _review(org.admin).json()
    assert page["stale_after_days"] == 90
    grants = {g["user"]: g for g in page["items"][0]["grants"]}
    assert grants["rita"]["stale"] is True and grants["rita"]["last_activity"] is None
    assert grants["gary"]["stale"] is False and grants["gary"]["last_activity"] is not None
    users = {r["user"]: r for r in _all_items(org.admin, "users") if r["via"] == "grant"}
    assert users["rita"]["stale"] is True and users["gary"]["stale"] is False


def test_an_attestation_is_recorded_audited_and_append_only(container: Any) -> None:
    org = Org()
    doc = org.document("private")
    body = {"notes": "Q4 review", "revoked": [{"document": doc, "user": "gary"}]}
    r = org.admin("POST", "/access-review/attestations", body)
    assert r.status == 201, r
    review = r.json()
    assert review["reviewed_by"] == "ada" and review["notes"] == "Q4 review"
    assert review["revoked"] == [{"document": doc, "user": "gary"}]
    assert review["id"] and review["reviewed_at"].endswith("Z")

    audit = org.admin("GET", "/audit?user=ada").json()["items"]
    assert [(a["action"], a["details"]) for a in audit] == [
        ("access-review.attest", {"review": review["id"], "revoked": 1})
    ]
    with admin_connection(container) as conn:
        # stored as the org's audit pseudonyms: an erasure leaves them naming nobody
        row = conn.execute(
            "SELECT r.notes, reviewer.user_id AS reviewer, r.reviewed_by, "
            "grantee.user_id AS grantee, r.revoked -> 0 ->> 'user' AS revoked_user "
            "FROM access_reviews r "
            "JOIN audit_actors reviewer ON reviewer.org = r.org "
            " AND reviewer.pseudonym = r.reviewed_by "
            "JOIN audit_actors grantee ON grantee.org = r.org "
            " AND grantee.pseudonym = r.revoked -> 0 ->> 'user' "
            "WHERE r.org = %s AND r.id = %s",
            (org.name, review["id"]),
        ).fetchone()
        assert row is not None
        assert (row["notes"], row["reviewer"], row["grantee"]) == ("Q4 review", "ada", "gary")
        assert row["reviewed_by"] != "ada" and row["revoked_user"] != "gary"
        for statement in (
            "UPDATE access_reviews SET notes = 'forged' WHERE org = %s",
            "DELETE FROM access_reviews WHERE org = %s",
        ):
            with pytest.raises(psycopg.errors.RaiseException, match="append-only"):
                conn.execute(statement, (org.name,))


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"notes": 3},
        {"notes": "x", "extra": 1},
        {"notes": "x", "revoked": [{"document": "d"}]},
        {"notes": "x", "revoked": [{"document": "d", "user": "a/b"}]},
        {"notes": "x" * 4001},
    ],
)
def test_an_invalid_attestation_is_a_422(container: Any, body: Any) -> None:
    org = Org()
    r = org.admin("POST", "/access-review/attestations", body)
    assert r.status == 422, r
    assert r.headers["content-type"] == "application/problem+json"
