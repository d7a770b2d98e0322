"""Attacks on document permissions (docs/security.md, "Document permissions").

A private document must be, to whoever may not read it, exactly what a
document of another org is: absent, on every read surface (read, list,
search, the changes feed, versions, one version, content download), whether
the answer comes from PostgreSQL or from the cache; grants must never cross
orgs nor lift the org role; and every grant or visibility change is audited.

Real PostgreSQL, Redis and an OpenSearch-compatible server, through the
Lambda handler (tests/conftest.py).
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from tests.conftest import (
    Invoker,
    admin_connection,
    make_token,
    post_search,
    read_feed,
    sync_search,
)

pytestmark = pytest.mark.integration


class Org:
    """Callers of one org: owner, admin, plain writer and reader, grantees."""

    def __init__(self) -> None:
        self.name = f"org-{uuid.uuid4().hex[:8]}"
        self.owner = self.api("olga", "writer")
        self.admin = self.api("ada", "admin")
        self.writer = self.api("will", "writer")
        self.reader = self.api("rita", "reader")
        self.granted = self.api("gary", "writer")  # gets a 'reader' grant
        self.weak = self.api("walt", "reader")  # gets a 'writer' grant, token says reader

    def api(self, sub: str, *roles: str) -> Invoker:
        return Invoker(make_token(org=self.name, sub=sub, roles=roles))


def _private(org: Org, title: str = "salary review") -> tuple[str, str]:
    r = org.owner("POST", "/documents", {"title": title, "body": {"t": "zebra"},
                                         "visibility": "private"})  # fmt: skip
    assert r.status == 201 and r.json()["visibility"] == "private", r
    doc_id = r.json()["id"]
    r = org.owner("PUT", f"/documents/{doc_id}", {"title": title, "body": {"t": "zebra v2"}},
                  headers={"If-Match": r.headers["etag"]})  # fmt: skip
    assert r.status == 200, r
    return doc_id, r.headers["etag"]


def _absent(r: Any, missing: Any) -> None:
    """A 404 that reads like the one for an id that never existed."""
    assert r.status == 404, r
    assert r.json()["title"] == missing.json()["title"]
    assert r.headers["content-type"] == "application/problem+json"


SURFACES = (
    ("GET", "/documents/{id}"),
    ("GET", "/documents/{id}/versions"),
    ("GET", "/documents/{id}/versions/1"),
    ("GET", "/documents/{id}/content"),
    ("GET", "/documents/{id}/grants"),
)


def test_every_read_surface_hides_a_private_document(search_container) -> None:
    org = Org()
    doc_id, etag = _private(org)
    open_id = org.owner("POST", "/documents", {"title": "menu", "body": {"t": "zebra"}}).json()[
        "id"
    ]
    org.owner("GET", f"/documents/{doc_id}")  # the cache now holds it, with its ACL
    sync_search(search_container)
    for caller in (org.reader, org.writer):
        for method, path in SURFACES:
            missing = caller(method, path.format(id="never-was"))
            _absent(caller(method, path.format(id=doc_id)), missing)
        _absent(caller("GET", f"/documents/{doc_id}", headers={"If-None-Match": etag}),
                caller("GET", "/documents/never-was"))  # fmt: skip
        ids = [d["id"] for d in caller("GET", "/documents?limit=100").json()["items"]]
        assert ids == [open_id]
        hits = post_search(caller, q="zebra")["hits"]
        assert [h["id"] for h in hits] == [open_id]
        changes = read_feed(caller, "since=0&limit=100", expect=1)["changes"]
        assert {c["id"] for c in changes} == {open_id}
    # ... while those who may read it see it everywhere
    for caller in (org.owner, org.admin):
        assert caller("GET", f"/documents/{doc_id}").status == 200
        assert caller("GET", f"/documents/{doc_id}/versions/1").status == 200
        assert doc_id in {h["id"] for h in post_search(caller, q="zebra")["hits"]}
        assert doc_id in {d["id"] for d in caller("GET", "/documents").json()["items"]}


def test_a_private_document_never_leaks_through_the_cache(search_container) -> None:
    org = Org()
    doc_id, _ = _private(org)
    for _ in range(2):  # a miss fills, a hit serves: both with the ACL
        r = org.owner("GET", f"/documents/{doc_id}")
        assert r.status == 200
    assert r.headers["x-cache"] == "hit"
    assert org.reader("GET", f"/documents/{doc_id}").status == 404
    # list pages: the owner's page (with the private document) is cached first
    assert doc_id in {d["id"] for d in org.owner("GET", "/documents").json()["items"]}
    r = org.reader("GET", "/documents")
    assert doc_id not in r.text
    assert org.reader("GET", "/documents").headers["x-cache"] == "hit"
    assert doc_id in org.owner("GET", "/documents").text  # its own page, still right


def test_a_grant_opens_exactly_its_role_and_its_revocation_closes_everything(
    search_container,
) -> None:
    org = Org()
    doc_id, _ = _private(org)
    org.owner("GET", f"/documents/{doc_id}")  # cached before the grant
    r = org.owner("PUT", f"/documents/{doc_id}/grants/gary", {"role": "reader"})
    assert r.status == 200 and r.json()["role"] == "reader", r
    r = org.owner("PUT", f"/documents/{doc_id}/grants/walt", {"role": "writer"})
    etag = r.headers["etag"]
    sync_search(search_container)
    got = org.granted("GET", f"/documents/{doc_id}")
    assert got.status == 200 and got.headers["etag"] == etag  # the cache has the new ACL
    assert org.granted("GET", f"/documents/{doc_id}/versions").status == 200
    assert doc_id in {h["id"] for h in post_search(org.granted, q="zebra")["hits"]}
    changes = read_feed(org.granted, "since=0&limit=100", expect=1)["changes"]
    assert doc_id in {c["id"] for c in changes}
    # a reader grant does not write, nor does a writer grant to a reader-role token
    patch = {"title": "pwned"}
    for caller in (org.granted, org.weak):
        r = caller("PATCH", f"/documents/{doc_id}", patch,
                   headers={"If-Match": etag, "Content-Type": "application/merge-patch+json"})  # fmt: skip
        assert r.status == 403, r
    assert org.weak("DELETE", f"/documents/{doc_id}").status == 403
    # grantees do not manage the ACL
    assert org.granted("PUT", f"/documents/{doc_id}/grants/rita", {"role": "reader"}).status == 403
    assert (
        org.granted("PUT", f"/documents/{doc_id}/visibility", {"visibility": "org"}).status == 403
    )
    # revoked: gone from every surface at once (search is checked against PostgreSQL)
    assert org.owner("DELETE", f"/documents/{doc_id}/grants/gary").status == 204
    assert org.granted("GET", f"/documents/{doc_id}").status == 404
    assert doc_id not in {h["id"] for h in post_search(org.granted, q="zebra")["hits"]}
    assert doc_id not in org.granted("GET", "/documents").text


def test_grants_never_cross_orgs(search_container) -> None:
    home, away = Org(), Org()
    doc_id, _ = _private(home)
    # away's "gary" holds the same user id as home's grantee, and is an admin there
    away_gary = away.api("gary", "admin")
    home.owner("PUT", f"/documents/{doc_id}/grants/gary", {"role": "writer"})
    missing = away_gary("GET", "/documents/never-was")
    _absent(away_gary("GET", f"/documents/{doc_id}"), missing)
    assert away_gary("PUT", f"/documents/{doc_id}/grants/gary", {"role": "writer"}).status == 404
    assert away_gary("GET", f"/documents/{doc_id}/grants").status == 404
    # a grant body naming another org is refused, not stored under it
    r = home.owner("PUT", f"/documents/{doc_id}/grants/bob", {"role": "reader", "org": away.name})
    assert r.status == 422, r
    with admin_connection(search_container) as conn:
        orgs = conn.execute(
            "SELECT DISTINCT org FROM document_grants WHERE doc_id = %s", (doc_id,)
        ).fetchall()
    assert [row["org"] for row in orgs] == [home.name]
    sync_search(search_container)
    assert post_search(away_gary, q="zebra")["hits"] == []


def test_grant_and_visibility_changes_are_audited_versions(search_container) -> None:
    org = Org()
    doc_id, _ = _private(org)
    org.owner("PUT", f"/documents/{doc_id}/grants/gary", {"role": "reader"},
              headers={"X-Request-Id": "client-grant-1"})  # fmt: skip
    org.admin("DELETE", f"/documents/{doc_id}/grants/gary")
    r = org.owner("PUT", f"/documents/{doc_id}/visibility", {"visibility": "org"})
    assert r.status == 200 and r.json()["visibility"] == "org" and r.json()["version"] == 5
    assert org.reader("GET", f"/documents/{doc_id}").status == 200
    with admin_connection(search_container) as conn:
        rows = conn.execute(
            # the chain stores actors and grantees as pseudonyms (migrations 0009,
            # 0012): resolve them
            "SELECT coalesce(a.user_id, l.actor) AS actor, l.action, l.version, l.request_id, "
            "l.details, g.user_id AS grantee FROM audit_log l "
            "LEFT JOIN audit_actors a ON a.org = l.org AND a.pseudonym = l.actor "
            "LEFT JOIN audit_actors g ON g.org = l.org AND g.pseudonym = l.details ->> 'grantee' "
            "WHERE l.org = %s AND l.doc_id = %s ORDER BY l.version",
            (org.name, doc_id),
        ).fetchall()
    acl_rows = [r for r in rows if r["action"] not in ("create", "replace")]
    assert [(r["actor"], r["action"], r["version"]) for r in acl_rows] == [
        ("olga", "grant.put", 3), ("ada", "grant.delete", 4), ("olga", "visibility.change", 5),
    ]  # fmt: skip
    assert all(r["request_id"] for r in acl_rows)
    assert acl_rows[0]["grantee"] == "gary" and acl_rows[1]["grantee"] == "gary"
    assert acl_rows[0]["details"]["grantee"].startswith("p-")  # never the id in clear
    assert acl_rows[0]["details"]["role"] == "reader"
    assert acl_rows[0]["details"]["client_request_id"] == "client-grant-1"
    assert acl_rows[2]["details"]["from"] == "private" and acl_rows[2]["details"]["to"] == "org"


def test_the_grant_listing_and_its_validation(search_container) -> None:
    org = Org()
    doc_id, _ = _private(org)
    for user, body in (("gary", {"role": "writer"}), ("gary", {"role": "reader"})):
        assert org.owner("PUT", f"/documents/{doc_id}/grants/{user}", body).status == 200
    listing = org.admin("GET", f"/documents/{doc_id}/grants").json()
    assert listing["owner"] == "olga" and listing["visibility"] == "private"
    assert [(g["user"], g["role"], g["granted_by"]) for g in listing["grants"]] == [
        ("gary", "reader", "olga")
    ]
    for body in ({"role": "owner"}, {"role": ["reader"]}, {}, ["reader"]):
        assert org.owner("PUT", f"/documents/{doc_id}/grants/x", body).status == 422
    assert org.reader("PUT", f"/documents/{doc_id}/grants/x", {"role": "reader"}).status == 403
    assert org.owner("PUT", f"/documents/{doc_id}/visibility", {"visibility": "all"}).status == 422
    assert org.owner("DELETE", f"/documents/{doc_id}/grants/nobody").status == 204
    # a user id with reserved characters travels percent-encoded and is stored decoded
    r = org.owner("PUT", f"/documents/{doc_id}/grants/bob%40example.com%20x", {"role": "reader"})
    assert r.status == 200 and r.json()["user"] == "bob@example.com x", r
    bob = org.api("bob@example.com x", "reader")
    assert bob("GET", f"/documents/{doc_id}").status == 200


def test_grants_given_while_open_hold_once_the_document_is_made_private(search_container) -> None:
    org = Org()
    r = org.owner("POST", "/documents", {"title": "plan", "body": {"t": "zebra"}})
    doc_id = r.json()["id"]
    assert org.owner("PUT", f"/documents/{doc_id}/grants/gary", {"role": "reader"}).status == 200
    org.granted("GET", f"/documents/{doc_id}")  # cached while open
    r = org.owner("PUT", f"/documents/{doc_id}/visibility", {"visibility": "private"})
    assert r.status == 200 and r.json()["visibility"] == "private", r
    for _ in range(2):  # a hit of the entry the visibility change published, then again
        got = org.granted("GET", f"/documents/{doc_id}")
        assert got.status == 200 and got.headers["etag"] == r.headers["etag"], got
    assert org.reader("GET", f"/documents/{doc_id}").status == 404
    search_container.cache.client.delete(  # a miss reads the grants from PostgreSQL
        search_container.cache._doc_key(org.name, doc_id)
    )
    assert org.granted("GET", f"/documents/{doc_id}").headers["x-cache"] == "miss"
    assert org.reader("GET", f"/documents/{doc_id}").status == 404
    assert org.granted("GET", f"/documents/{doc_id}").status == 200
