"""The API through the Lambda handler, on real PostgreSQL and Redis."""

from __future__ import annotations

import json

import pytest

from tests.conftest import Invoker, make_token

pytestmark = pytest.mark.integration

PATCH = {"Content-Type": "application/json-patch+json"}
MERGE = {"Content-Type": "application/merge-patch+json"}


def create(invoke, **fields):
    r = invoke("POST", "/documents", {"title": "Doc", **fields})
    assert r.status == 201, r
    return r.json()


def test_crud_round_trip(invoke) -> None:
    doc = create(invoke, body={"text": "hello"}, tags=["a"], metadata={"k": "v"})
    r = invoke("GET", f"/documents/{doc['id']}")
    assert r.status == 200 and r.json() == doc
    assert r.headers["etag"] == doc["etag"]
    assert r.headers["x-request-id"] and r.headers["x-content-type-options"] == "nosniff"
    assert "strict-transport-security" in r.headers

    r = invoke("PATCH", f"/documents/{doc['id']}", {"body": {"text": "bye"}},
               headers={**MERGE, "If-Match": doc["etag"]})  # fmt: skip
    assert r.status == 200 and r.json()["version"] == 2 and r.json()["body"] == {"text": "bye"}
    assert "application/merge-patch+json" in r.headers["accept-patch"]

    r = invoke("DELETE", f"/documents/{doc['id']}", headers={"If-Match": r.json()["etag"]})
    assert r.status == 204 and r.text == ""
    assert invoke("GET", f"/documents/{doc['id']}").status == 404
    admin = Invoker(make_token(roles=("admin",)))
    r = admin("POST", f"/documents/{doc['id']}/restore")
    assert r.status == 200 and r.json()["version"] == 4
    assert invoke("GET", f"/documents/{doc['id']}").json()["version"] == 4


def test_cache_miss_then_hit_and_no_stale_read_after_write(invoke, container) -> None:
    doc = create(invoke)
    container.cache.client.delete(container.cache._doc_key("acme", doc["id"]))
    assert invoke("GET", f"/documents/{doc['id']}").headers["x-cache"] == "miss"
    assert invoke("GET", f"/documents/{doc['id']}").headers["x-cache"] == "hit"
    etag = doc["etag"]
    for i in range(5):
        r = invoke("POST", f"/documents/{doc['id']}/changes",
                   [{"op": "replace", "path": "/title", "value": f"t{i}"}],
                   headers={**PATCH, "If-Match": etag})  # fmt: skip
        assert r.status == 200
        etag = r.json()["etag"]
        read = invoke("GET", f"/documents/{doc['id']}")
        assert read.json()["title"] == f"t{i}" and read.headers["etag"] == etag


def test_conditional_requests(invoke) -> None:
    doc = create(invoke)
    path = f"/documents/{doc['id']}"
    r = invoke("GET", path, headers={"If-None-Match": doc["etag"]})
    assert r.status == 304 and r.text == "" and r.headers["etag"] == doc["etag"]
    assert invoke("GET", path, headers={"If-None-Match": '"other"'}).status == 200
    r = invoke("PUT", path, {"title": "x"})
    assert r.status == 428 and r.headers["content-type"] == "application/problem+json"
    r = invoke("PUT", path, {"title": "x"}, headers={"If-Match": '"stale"'})
    assert r.status == 412 and r.headers["etag"] == doc["etag"]
    assert invoke("PUT", path, {"title": "x"}, headers={"If-None-Match": "*"}).status == 412
    r = invoke("PUT", path, {"title": "x"}, headers={"If-Match": doc["etag"]})
    assert r.status == 200 and r.json()["version"] == 2
    r = invoke(
        "PUT", "/documents/client.chosen-id_1", {"title": "new"}, headers={"If-None-Match": "*"}
    )
    assert r.status == 201 and r.headers["location"] == "/documents/client.chosen-id_1"


def test_concurrent_writers_with_same_etag_exactly_one_wins(invoke, container) -> None:
    """Real concurrency at the service layer (the HTTP-level race is in tests/e2e)."""
    import threading

    from chalicelib.domain.errors import PreconditionFailed
    from chalicelib.domain.patching import MERGE_PATCH
    from chalicelib.domain.principal import Principal

    doc = create(invoke)
    who = Principal("alice", "acme", frozenset({"writer"}))
    barrier = threading.Barrier(6)
    outcomes: list[str] = []

    def write(i: int) -> None:
        barrier.wait()
        try:
            container.documents.change(
                who, doc["id"], MERGE_PATCH, {"title": f"w{i}"}, if_match=doc["etag"]
            )
            outcomes.append("won")
        except PreconditionFailed:
            outcomes.append("412")

    threads = [threading.Thread(target=write, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["412"] * 5 + ["won"]
    versions = invoke("GET", f"/documents/{doc['id']}/versions").json()["items"]
    assert [v["version"] for v in versions] == [2, 1]


@pytest.mark.parametrize(
    ("method", "path", "kwargs", "status"),
    [
        ("POST", "/documents", {"raw": b"{not json"}, 400),
        ("POST", "/documents", {"raw": b"[" * 40 + b"]" * 40}, 400),
        ("POST", "/documents", {"body": {"title": "x"}, "token": None}, 401),
        ("POST", "/documents", {"body": {"title": "x"}, "token": "garbage"}, 401),
        ("GET", "/documents/nope", {}, 404),
        ("GET", "/documents/bad%20id", {}, 422),
        ("DELETE", "/health", {}, 405),
        ("POST", "/documents", {"raw": b'{"title": "' + b"x" * (1024 * 1024) + b'"}'}, 413),
        (
            "POST",
            "/documents",
            {"body": {"title": "x"}, "headers": {"Content-Type": "text/xml"}},
            415,
        ),
        ("POST", "/documents", {"body": {"title": 5}}, 422),
        ("POST", "/documents", {"body": {"title": "x", "version": 3}}, 422),
        ("GET", "/documents?limit=0", {}, 400),
        ("GET", "/documents?page_token=forged", {}, 400),
    ],
)
def test_errors_are_problem_json(invoke, method, path, kwargs, status) -> None:
    r = invoke(method, path, **kwargs)
    assert r.status == status, r
    assert r.headers["content-type"] == "application/problem+json"
    problem = r.json()
    assert (
        problem["status"] == status and problem["title"] and problem["detail"] and problem["type"]
    )
    assert "Traceback" not in r.text
    if status == 413:
        assert "/content" in problem["detail"]
    if status == 422 and method == "POST":
        assert problem["errors"]


def test_roles_and_cross_org_isolation(invoke) -> None:
    doc = create(invoke)
    reader = Invoker(make_token(sub="rita", roles=("reader",)))
    assert reader("GET", f"/documents/{doc['id']}").status == 200
    assert reader("POST", "/documents", {"title": "x"}).status == 403
    assert reader("DELETE", f"/documents/{doc['id']}").status == 403
    other = Invoker(make_token(org="other", roles=("admin",)))
    for method, path, body in [
        ("GET", f"/documents/{doc['id']}", None),
        ("DELETE", f"/documents/{doc['id']}", None),
        ("GET", f"/documents/{doc['id']}/versions", None),
        ("GET", f"/documents/{doc['id']}/versions/1", None),
    ]:
        r = other(method, path, body, headers={"If-Match": doc["etag"]})
        assert r.status == 404, (method, path, r)
    # the same id in another org is another document: If-Match cannot reach ours
    r = other("PUT", f"/documents/{doc['id']}", {"title": "pwn"}, headers={"If-Match": doc["etag"]})
    assert r.status == 412 and "does not exist" in r.json()["detail"]
    assert all(d["org"] == "other" for d in other("GET", "/documents").json()["items"])
    assert invoke("GET", f"/documents/{doc['id']}").json()["title"] == "Doc"


def test_list_pagination_tags_and_list_cache_invalidation(invoke) -> None:
    lister = Invoker(make_token(org="lists-org"))
    ids = [lister("POST", "/documents", {"title": f"d{i}", "tags": ["t"] if i % 2 else []}).json()["id"]
           for i in range(7)]  # fmt: skip
    seen, token = [], None
    while True:
        r = lister("GET", "/documents?limit=3" + (f"&page_token={token}" if token else ""))
        assert r.status == 200
        page = r.json()
        seen += [d["id"] for d in page["items"]]
        token = page["next_page_token"]
        if token is None:
            break
    assert seen == ids[::-1]
    assert len(lister("GET", "/documents?tag=t").json()["items"]) == 3
    assert lister("GET", "/documents?limit=3").headers["x-cache"] == "hit"
    new = lister("POST", "/documents", {"title": "newest"}).json()
    r = lister("GET", "/documents?limit=3")
    assert r.headers["x-cache"] == "miss" and r.json()["items"][0]["id"] == new["id"]


def test_versions_and_restore_version(invoke) -> None:
    doc = create(invoke, body=1)
    r = invoke("PATCH", f"/documents/{doc['id']}", [{"op": "replace", "path": "/body", "value": 2}],
               headers={**PATCH, "If-Match": doc["etag"]})  # fmt: skip
    v2 = r.json()
    old = invoke("GET", f"/documents/{doc['id']}/versions/1")
    assert (
        old.status == 200
        and old.json()["body"] == 1
        and "immutable" in old.headers["cache-control"]
    )
    assert invoke("GET", f"/documents/{doc['id']}/versions/0").status == 400
    assert invoke("POST", f"/documents/{doc['id']}/versions/1/restore").status == 428
    r = invoke(
        "POST", f"/documents/{doc['id']}/versions/1/restore", headers={"If-Match": v2["etag"]}
    )
    assert r.status == 200 and r.json()["body"] == 1 and r.json()["version"] == 3


def test_health_and_openapi(invoke) -> None:
    r = invoke("GET", "/health", token=None)
    assert r.status == 200 and r.json() == {
        "status": "ok",
        "checks": {"postgres": "ok", "redis": "ok", "s3": "skipped", "search": "skipped"},
    }
    spec = invoke("GET", "/openapi.json", token=None).json()
    assert spec["openapi"].startswith("3.1")
    import app

    served = {(path, m.lower()) for path, methods in app.app.routes.items() for m in methods}
    documented = {
        (path.replace("{doc_id}", "{doc_id}"), m)
        for path, ops in spec["paths"].items()
        for m in ops
    }
    assert served == documented
    assert "DocumentIn" in spec["components"]["schemas"]


def test_write_is_one_transaction_with_version_outbox_and_audit(invoke, settings) -> None:
    import psycopg

    doc = create(invoke)
    invoke("DELETE", f"/documents/{doc['id']}")
    with psycopg.connect(settings.database_url) as conn:
        versions = conn.execute(
            "SELECT version, action FROM document_versions WHERE id = %s ORDER BY version",
            (doc["id"],),
        ).fetchall()
        outbox = conn.execute(
            "SELECT version, op FROM outbox WHERE doc_id = %s ORDER BY seq", (doc["id"],)
        ).fetchall()
        audit = conn.execute(  # the row holds a pseudonym; audit_actors says whose
            "SELECT a.version, a.action, m.user_id, a.request_id FROM audit_log a "
            "JOIN audit_actors m ON (m.org, m.pseudonym) = (a.org, a.actor) "
            "WHERE a.doc_id = %s ORDER BY a.id",
            (doc["id"],),
        ).fetchall()
    assert versions == [(1, "create"), (2, "delete")]
    assert outbox == [(1, "upsert"), (2, "delete")]
    assert [(a[0], a[1], a[2]) for a in audit] == [(1, "create", "alice"), (2, "delete", "alice")]
    assert all(a[3] for a in audit), "audit rows carry the request id"
    assert json.loads(json.dumps(doc))["version"] == 1


def test_unexpected_errors_are_logged_and_answered_without_details(
    invoke, container, monkeypatch
) -> None:
    import sys

    from chalicelib.observability import logger

    logged: list[BaseException | None] = []
    monkeypatch.setattr(logger, "exception", lambda *a, **k: logged.append(sys.exc_info()[1]))

    def boom(*args, **kwargs):
        raise RuntimeError("secret internals")

    container.documents.get = boom
    r = invoke("GET", "/documents/anything", headers={"X-Request-Id": "req-500"})
    assert r.status == 500 and r.headers["content-type"] == "application/problem+json"
    assert "secret" not in r.text and "req-500" in r.json()["detail"]
    assert [str(e) for e in logged] == ["secret internals"], "the error and its stack were logged"


@pytest.mark.parametrize(
    "raw",
    [
        b'{"title": "nul \\u0000 inside"}',
        b'{"title": "x", "metadata": {"k\\u0000": 1}}',
        b'{"title": "x", "body": ["lone \\ud800 surrogate"]}',
        b'{"title": "x", "tags": ["\\udfff"]}',
    ],
)
def test_text_postgres_cannot_store_is_a_400_not_a_500(invoke, raw) -> None:
    r = invoke("POST", "/documents", raw=raw)
    assert r.status == 400, r
    assert r.headers["content-type"] == "application/problem+json"
    assert "cannot be stored" in r.json()["detail"]


def test_escaped_text_that_is_storable_is_accepted(invoke) -> None:
    r = invoke(
        "POST", "/documents", raw=b'{"title": "tab\\tand \\u00e9 and \\ud83d\\ude00 and \\\\u0000"}'
    )
    assert r.status == 201, r
    assert r.json()["title"] == "tab\tand \u00e9 and \U0001f600 and \\u0000"
