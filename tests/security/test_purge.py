"""The purge leaves nothing behind: PostgreSQL, Redis, the index, S3 (every object
version, moto), and the database refuses to purge what is not due.

Real PostgreSQL (a database of its own), Redis (the run's key prefix), an
OpenSearch-compatible server (an alias of its own) and a private moto server
(a versioned bucket).  Documents are made "old" by moving their deletion time
back as the admin: no clock is faked in the service.
"""

from __future__ import annotations

import json
import urllib.request
import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
import redis

from chalicelib.domain.errors import DependencyUnavailable
from tests.conftest import (
    REDIS_URL,
    Invoker,
    admin_connection,
    fresh_container,
    make_token,
    sync_search,
)

pytestmark = pytest.mark.integration
TITLE = "Very identifying title"
# every table holding rows of a document, and its id column
DOC_TABLES = {
    "documents": "id",
    "document_versions": "id",
    "document_content_text": "doc_id",
    "content_uploads": "doc_id",
    "cache_dirty": "doc_id",
    "document_purges": "doc_id",
}


@pytest.fixture
def c(settings: Any, opensearch_url: str, moto_endpoint: str) -> Iterator[Any]:
    from devtools.s3_stack import ensure_resources

    suffix = uuid.uuid4().hex[:10]
    bucket = f"docs-purge-{suffix}"
    ensure_resources(moto_endpoint, bucket, queue=f"docs-purge-{suffix}", visibility_timeout_s=0)
    with fresh_container(
        settings, search_url=opensearch_url, aws_endpoint_url=moto_endpoint, content_bucket=bucket
    ) as built:
        yield built


def _api(org: str) -> Invoker:
    return Invoker(make_token(org=org, roles=("admin",)))


def _doc_with_content(c: Any, api: Invoker) -> tuple[dict[str, Any], str]:
    """A document with an uploaded object of three versions and a delete marker."""
    r = api("POST", "/documents", {"title": TITLE, "body": {"text": "secret words"}})
    assert r.status == 201, r
    doc = r.json()
    r = api("POST", f"/documents/{doc['id']}/content", {"content_type": "text/plain"})
    assert r.status == 200, r
    ticket = r.json()
    headers = {k: v for k, v in ticket["headers"].items() if k.lower() != "content-length"}
    req = urllib.request.Request(ticket["upload_url"], data=b"v1 bytes", method="PUT",
                                 headers=headers)  # fmt: skip
    with urllib.request.urlopen(req, timeout=30) as resp:
        assert resp.status == 200
    key = f"content/{doc['org']}/{doc['id']}/{ticket['upload_id']}"
    s3 = c.blobs.s3
    s3.put_object(Bucket=c.settings.content_bucket, Key=key, Body=b"v2 bytes")
    s3.delete_object(Bucket=c.settings.content_bucket, Key=key)  # a delete marker
    s3.put_object(Bucket=c.settings.content_bucket, Key=key, Body=b"v3 bytes")
    # a neighbour whose key has this one as a prefix: never touched
    s3.put_object(Bucket=c.settings.content_bucket, Key=key + "X", Body=b"other")
    assert c.content.process_object(c.settings.content_bucket, key) is not None
    return api("GET", f"/documents/{doc['id']}").json(), key


def _versions(c: Any, key: str) -> list[str]:
    out = c.blobs.s3.list_object_versions(Bucket=c.settings.content_bucket, Prefix=key)
    found = [*out.get("Versions", []), *out.get("DeleteMarkers", [])]
    return [v["VersionId"] for v in found if v["Key"] == key]


def _delete(api: Invoker, doc: dict[str, Any]) -> None:
    assert api("DELETE", f"/documents/{doc['id']}").status == 204


def _age(c: Any, org: str, doc_id: str, days: int) -> None:
    with admin_connection(c) as conn:
        conn.execute(
            "UPDATE documents SET deleted_at = now() - make_interval(days => %s) "
            "WHERE org = %s AND id = %s",
            (days, org, doc_id),
        )


def _rows(c: Any, org: str, doc_id: str) -> dict[str, int]:
    with admin_connection(c) as conn:
        return {
            table: conn.execute(
                f"SELECT count(*) AS n FROM {table} WHERE org = %s AND {column} = %s",
                (org, doc_id),
            ).fetchone()["n"]
            for table, column in DOC_TABLES.items()
        }


def _redis_values(c: Any) -> dict[bytes, bytes]:
    client = redis.Redis.from_url(REDIS_URL)
    out = {}
    for key in client.scan_iter(match=f"{c.settings.redis_key_prefix}*"):
        if client.type(key) == b"string":
            out[key] = client.get(key) or b""
    return out


def test_a_purge_leaves_nothing_behind_and_spares_the_window(c: Any) -> None:
    org = f"purge-{uuid.uuid4().hex[:8]}"
    api = _api(org)
    old, old_key = _doc_with_content(c, api)
    recent, recent_key = _doc_with_content(c, api)
    assert old["content"]["status"] == "ready"
    assert len(_versions(c, old_key)) == 4
    _delete(api, old)
    _delete(api, recent)
    _age(c, org, old["id"], 31)
    _age(c, org, recent["id"], 29)
    sync_search(c)
    for doc in (old, recent):  # the tombstones are cached, the lists too
        assert api("GET", f"/documents/{doc['id']}").status == 404
    assert api("GET", "/documents").status == 200
    restore_too_late = api("POST", f"/documents/{old['id']}/restore")
    assert restore_too_late.status == 410

    report = c.purge.run()
    assert (report.purged, report.finished, report.failed) == (1, 1, 0)
    assert report.objects == 4  # three versions and the delete marker

    # PostgreSQL: no row of the document anywhere; one pseudonymous audit row
    assert _rows(c, org, old["id"]) == dict.fromkeys(DOC_TABLES, 0)
    with admin_connection(c) as conn:
        purge_rows = conn.execute(
            # the chain stores actors as pseudonyms (migration 0009): resolve it
            "SELECT coalesce(a.user_id, l.actor) AS actor, l.version, l.details "
            "FROM audit_log l LEFT JOIN audit_actors a ON a.org = l.org AND a.pseudonym = l.actor "
            "WHERE l.org = %s AND l.doc_id = %s AND l.action = 'purge'",
            (org, old["id"]),
        ).fetchall()
        outbox = conn.execute(
            "SELECT op FROM outbox WHERE org = %s AND doc_id = %s ORDER BY seq DESC LIMIT 1",
            (org, old["id"]),
        ).fetchone()
    assert len(purge_rows) == 1
    assert purge_rows[0]["actor"] == "system"
    assert TITLE not in json.dumps(purge_rows[0]["details"])
    assert outbox["op"] == "purge"

    # S3: every version and marker of its key gone; the neighbour and the other kept
    assert _versions(c, old_key) == []
    assert len(_versions(c, old_key + "X")) == 1
    assert len(_versions(c, recent_key)) == 4

    # Redis: no entry of the document, and no cached value naming it
    values = _redis_values(c)
    for key in (c.cache._doc_key(org, old["id"]), c.cache._etag_key(org, old["id"])):
        assert key.encode() not in values
    assert not any(old["id"].encode() in v for v in values.values())

    # the index: the sync applies the purge row (a delete); nothing of it is left
    sync_search(c)
    indexed = c.search_index.all_documents()
    assert not any(src["id"] == old["id"] for _, (_, src) in indexed.items())

    # inside the window: untouched, and an admin restore still works
    assert _rows(c, org, recent["id"])["document_versions"] >= 3
    r = api("POST", f"/documents/{recent['id']}/restore")
    assert r.status == 200, r
    assert r.json()["content"]["status"] == "ready"
    sync_search(c)
    assert any(src["id"] == recent["id"] for _, (_, src) in c.search_index.all_documents().items())

    # idempotent: nothing more to do; the purged id is free for a new document
    again = c.purge.run()
    assert (again.purged, again.finished, again.failed) == (0, 0, 0)
    r = api("PUT", f"/documents/{old['id']}", {"title": "a new life"})
    assert r.status == 201 and r.json()["version"] == old["version"] + 3  # above the purge


class FlakyObjects:
    """S3 fails once (the run stops between the database and the objects)."""

    def __init__(self, real: Any) -> None:
        self.real = real
        self.calls = 0

    def delete_every_version(self, keys: list[str]) -> int:
        self.calls += 1
        if self.calls == 1:
            raise DependencyUnavailable("The object store is unavailable.")
        return int(self.real.delete_every_version(keys))


def test_a_purge_interrupted_after_the_database_finishes_later(c: Any) -> None:
    org = f"purge-{uuid.uuid4().hex[:8]}"
    api = _api(org)
    doc, key = _doc_with_content(c, api)
    _delete(api, doc)
    _age(c, org, doc["id"], 40)
    c.purge.objects = FlakyObjects(c.object_purger)

    first = c.purge.run()
    assert (first.purged, first.finished, first.failed) == (1, 0, 1)
    rows = _rows(c, org, doc["id"])
    assert rows.pop("document_purges") == 1  # the task keeps the keys ...
    assert rows == dict.fromkeys(rows, 0)  # ... nothing else points at the content
    assert len(_versions(c, key)) == 4
    assert api("GET", f"/documents/{doc['id']}/content").status == 404

    assert c.purge.run().finished == 0  # backed off: not due yet
    with admin_connection(c) as conn:
        conn.execute("UPDATE document_purges SET next_attempt_at = now() WHERE org = %s", (org,))
    second = c.purge.run()
    assert (second.purged, second.finished, second.failed, second.objects) == (0, 1, 0, 4)
    assert _versions(c, key) == []
    assert _rows(c, org, doc["id"]) == dict.fromkeys(DOC_TABLES, 0)


def test_the_database_refuses_to_purge_what_is_not_due(c: Any) -> None:
    """The runtime login cannot use the purge function on a live document, a recent
    deletion (with a cutoff in the future), or another org's document."""
    org, other = f"purge-{uuid.uuid4().hex[:8]}", f"purge-{uuid.uuid4().hex[:8]}"
    api = _api(org)
    live = api("POST", "/documents", {"title": "live"}).json()
    gone = api("POST", "/documents", {"title": "gone"}).json()
    _delete(api, gone)

    def call(as_org: str, doc_id: str, cutoff: str) -> Any:
        with c.uow.transaction(as_org) as tx:
            row = tx.conn.execute(
                f"SELECT docs_purge_rows(%s, %s, {cutoff}) AS n", (org, doc_id)
            ).fetchone()
            return row["n"]

    assert call(org, live["id"], "now()") == -1  # live: nothing removed
    with pytest.raises(Exception, match="future"):
        call(org, gone["id"], "now() + interval '1 day'")
    with pytest.raises(Exception, match="org"):
        call(other, gone["id"], "now()")
    # the runtime login still holds no DELETE of its own on documents or versions
    with pytest.raises(psycopg.errors.InsufficientPrivilege), c.uow.transaction(org) as tx:
        tx.conn.execute("DELETE FROM document_versions WHERE org = %s", (org,))
    assert _rows(c, org, live["id"])["documents"] == 1
    assert _rows(c, org, gone["id"])["document_versions"] == 2


def test_an_id_reused_after_its_purge_is_searchable(c: Any) -> None:
    """The index holds the purge's delete at a version above the purged life's last
    one: the id's new life keeps counting above it, or the index would refuse its
    writes as older than the delete (and the new document would never be found)."""
    from tests.conftest import post_search

    org = f"purge-{uuid.uuid4().hex[:8]}"
    api = _api(org)
    doc_id = f"reused-{uuid.uuid4().hex[:8]}"
    r = api("PUT", f"/documents/{doc_id}", {"title": "first life"})
    assert r.status == 201
    for n in (2, 3):
        r = api("PUT", f"/documents/{doc_id}", {"title": f"first life {n}"},
                headers={"If-Match": r.json()["etag"]})  # fmt: skip
        assert r.status == 200, r
    _delete(api, {"id": doc_id})  # version 4
    _age(c, org, doc_id, 31)
    sync_search(c)
    assert c.purge.run().purged == 1  # the index deletes at version 5
    sync_search(c)
    r = api("PUT", f"/documents/{doc_id}", {"title": "second life"})
    assert r.status == 201, r
    created = r.json()
    sync_search(c)
    hits = post_search(api, q="second")["hits"]
    assert [h["id"] for h in hits] == [doc_id]
    assert created["version"] == 6  # above the purge's delete
    assert api("GET", f"/documents/{doc_id}").json()["etag"] == created["etag"]
    versions = api("GET", f"/documents/{doc_id}/versions").json()["items"]
    assert [v["version"] for v in versions] == [6]  # the new life's history only
    r = api("PUT", f"/documents/{doc_id}", {"title": "second life, edited"},
            headers={"If-Match": created["etag"]})  # fmt: skip
    assert r.status == 200 and r.json()["version"] == 7
    sync_search(c)
    hits = post_search(api, q="edited")["hits"]
    assert [h["id"] for h in hits] == [doc_id]

    # the floor: the purge's version, kept with the org's rows
    with admin_connection(c) as conn:
        floor = conn.execute(
            "SELECT version FROM document_version_floors WHERE org = %s AND doc_id = %s",
            (org, doc_id),
        ).fetchone()
    assert floor is not None and floor["version"] == 5

    # the floor is the org's own: another org sees none of it, and starts at 1
    other = f"purge-{uuid.uuid4().hex[:8]}"
    with c.uow.transaction(other) as tx:
        seen = tx.conn.execute("SELECT count(*) AS n FROM document_version_floors").fetchone()
    assert seen["n"] == 0
    r = _api(other)("PUT", f"/documents/{doc_id}", {"title": "other org"})
    assert r.status == 201 and r.json()["version"] == 1


def test_a_replayed_create_at_an_id_reused_after_its_purge_is_recognised(c: Any) -> None:
    """An Idempotency-Key's create replayed (its stored answer lost) finds its own
    first version although the id's new life does not start at version 1."""
    from chalicelib.domain.principal import Principal

    org = f"purge-{uuid.uuid4().hex[:8]}"
    who = Principal("alice", org, frozenset({"writer"}))
    doc_id = f"idem-{uuid.uuid4().hex[:8]}"
    c.documents.create(who, {"title": "first life"}, doc_id=doc_id, replay=True)
    _delete(_api(org), {"id": doc_id})
    _age(c, org, doc_id, 31)
    assert c.purge.run().purged == 1
    made = c.documents.create(who, {"title": "second life"}, doc_id=doc_id, replay=True)
    assert made.version == 4  # above the purge's version (3)
    again = c.documents.create(who, {"title": "second life"}, doc_id=doc_id, replay=True)
    assert (again.id, again.version, again.title) == (doc_id, 4, "second life")
