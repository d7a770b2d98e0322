"""Inputs an attacker sends: each gets a 4xx problem+json, never a 500, and
nothing is stored.  Driven through ``app.handler`` with API Gateway events, on
real PostgreSQL and Redis."""

from __future__ import annotations

import time
import uuid
from typing import Any

import jwt
import psycopg
import pytest

from tests.conftest import JWT_SECRET, Invoker, make_token

pytestmark = pytest.mark.integration


def _problem(r: Any, status: int) -> dict[str, Any]:
    assert r.status == status, r
    assert r.headers["content-type"] == "application/problem+json", r.headers
    body: dict[str, Any] = r.json()
    assert body["status"] == status and body["detail"]
    return body


def _count(database_url: str, org: str) -> int:
    with psycopg.connect(database_url) as conn:
        row = conn.execute("SELECT count(*) FROM documents WHERE org = %s", (org,)).fetchone()
    assert row is not None
    return int(row[0])


def _org_api(org: str, roles: tuple[str, ...] = ("writer",), **claims: Any) -> Invoker:
    return Invoker(make_token(org=org, roles=roles, **claims))


# ------------------------------------------------------------ numbers
NOT_DOUBLES = [b"NaN", b"Infinity", b"-Infinity", b"1e400", b"-1e400", b"1" + b"0" * 400]


@pytest.mark.parametrize("number", NOT_DOUBLES)
def test_numbers_that_are_not_finite_doubles_are_a_400(
    container: Any, database_url: str, number: bytes
) -> None:
    org = f"num-{uuid.uuid4().hex[:8]}"
    api = _org_api(org)
    nested = b'{"title": "n", "body": {"deep": [1, {"x": ' + number + b"}]}}"
    detail = _problem(api("POST", "/documents", raw=nested), 400)["detail"]
    assert "finite" in detail
    _problem(
        api("PUT", "/documents/n1", raw=b'{"title": "n", "metadata": {"k": ' + number + b"}}"), 400
    )
    _problem(
        api(
            "POST",
            "/documents:batch",
            raw=b'{"documents": [{"title": "n", "body": ' + number + b"}]}",
        ),
        400,
    )
    doc = api("POST", "/documents", {"title": "fine"}).json()
    for mtype, patch in (
        (
            "application/json-patch+json",
            b'[{"op": "add", "path": "/body", "value": ' + number + b"}]",
        ),
        ("application/merge-patch+json", b'{"body": ' + number + b"}"),
    ):
        r = api("PATCH", f"/documents/{doc['id']}", raw=patch,
                headers={"Content-Type": mtype, "If-Match": doc["etag"]})  # fmt: skip
        _problem(r, 400)
    _problem(api("POST", "/search", raw=b'{"q": "x", "size": ' + number + b"}"), 400)
    assert _count(database_url, org) == 1  # only the "fine" one
    assert api("GET", f"/documents/{doc['id']}").json()["version"] == 1


def test_large_but_finite_numbers_are_stored_and_read_back(invoke: Any) -> None:
    r = invoke(
        "POST",
        "/documents",
        raw=b'{"title": "big", "body": [1.7e308, -1e-300, 12345678901234567890]}',
    )
    assert r.status == 201, r
    assert invoke("GET", f"/documents/{r.json()['id']}").json()["body"][0] == 1.7e308


# ------------------------------------------------------------ ids
@pytest.mark.parametrize("bad", ["x%0A", "x%0D", "%2E", "%2E%2E", "x%00", "a%20b"])
def test_ids_are_matched_whole_and_dot_segments_are_refused(
    container: Any, database_url: str, bad: str
) -> None:
    org = f"ids-{uuid.uuid4().hex[:8]}"
    api = _org_api(org)
    _problem(api("PUT", f"/documents/{bad}", {"title": "t"}), 422)
    _problem(api("GET", f"/documents/{bad}"), 422)
    _problem(api("POST", f"/documents/{bad}/content", {"content_type": "text/plain"}), 422)
    assert _count(database_url, org) == 0


def test_dots_inside_ids_stay_valid(invoke: Any) -> None:
    for good in ("a.b", "...", ".x", "x."):
        assert invoke("PUT", f"/documents/{good}", {"title": "t"}).status == 201


# ------------------------------------------------------------ tokens
def _raw_token(**claims: Any) -> str:
    now = int(time.time())
    base: dict[str, Any] = {"sub": "alice", "org": "tok", "roles": ["writer"], "iss": "docs-local",
                            "aud": "docs-api", "iat": now, "exp": now + 600}  # fmt: skip
    base.update(claims)
    return jwt.encode({k: v for k, v in base.items() if v is not None}, JWT_SECRET, "HS256")


@pytest.mark.parametrize(
    "claims",
    [
        {"exp": str(int(time.time()) + 600)},
        {"exp": [int(time.time()) + 600]},
        {"nbf": "yesterday"},
        {"nbf": {"t": 1}},
        {"iat": "now"},
        {"iat": True},
    ],
)
def test_time_claims_must_be_numbers_on_every_use(container: Any, claims: dict[str, Any]) -> None:
    api = Invoker(_raw_token(**claims))
    for _ in range(3):  # the first use once passed, then the cached token gave a 500
        _problem(api("GET", "/documents"), 401)


@pytest.mark.parametrize(
    "claims",
    [
        {"org": "acme\x00"},
        {"org": "ac\nme"},
        {"org": "\x1b[31macme"},
        {"sub": "alice\x00"},
        {"sub": "al\u200bice\x7f"},
        {"org": "o" * 257},
        {"org": ""},
        {"org": 7},
    ],
)
def test_org_and_sub_must_be_printable_text(container: Any, claims: dict[str, Any]) -> None:
    _problem(Invoker(_raw_token(**claims))("GET", "/documents"), 401)


@pytest.mark.parametrize("roles", ["admin", "writer", "[admin]", {"admin": True}, [["admin"]], 1])
def test_roles_must_be_a_list(container: Any, roles: Any) -> None:
    _problem(Invoker(_raw_token(roles=roles))("POST", "/documents", {"title": "x"}), 401)


def test_unknown_roles_in_the_list_grant_nothing(container: Any) -> None:
    api = Invoker(_raw_token(roles=["superuser", "reader"]))
    assert api("GET", "/documents").status == 200
    _problem(api("POST", "/documents", {"title": "x"}), 403)


def test_token_lifetime_is_capped(container: Any) -> None:
    now = int(time.time())
    _problem(Invoker(_raw_token(exp=10**30))("GET", "/documents"), 401)
    _problem(Invoker(_raw_token(iat=now, exp=now + 25 * 3600))("GET", "/documents"), 401)
    _problem(Invoker(_raw_token(iat=None, exp=now + 48 * 3600))("GET", "/documents"), 401)
    assert Invoker(_raw_token(iat=now, exp=now + 23 * 3600))("GET", "/documents").status == 200


@pytest.mark.parametrize(
    "token",
    [
        "eyJ\udcb7\udcb7.eyJ.sig",
        "e30.e30.\udcff",
        "eyJhbGciOiJIUzI1NiJ9.\udcb7\udcb7\udcb7\udcb7.c2ln",
        "eyJhbGciOiJIUzI1NiJ9.bm90IGpzb24.c2ln",
        "not-a-jwt",
    ],
)
def test_undecodable_tokens_name_no_decoder_internals(container: Any, token: str) -> None:
    # surrogate escapes stand for the raw bytes a client can put in a header
    header = token.encode("utf-8", "surrogateescape").decode("latin-1")
    detail = _problem(
        Invoker(None)("GET", "/documents", headers={"Authorization": f"Bearer {header}"}), 401
    )["detail"]
    for internal in ("codec", "byte", "0x", "utf", "Expecting", "Invalid header", "padding"):
        assert internal not in detail


# ------------------------------------------------------------ soft delete
def test_put_cannot_bring_back_a_deleted_document(container: Any) -> None:
    org = f"del-{uuid.uuid4().hex[:8]}"
    writer, admin = _org_api(org), _org_api(org, roles=("admin",))
    created = writer("PUT", "/documents/gone", {"title": "secret v1"})
    assert created.status == 201
    assert writer("DELETE", "/documents/gone").status == 204
    for headers in ({}, {"If-None-Match": "*"}):
        detail = _problem(
            writer("PUT", "/documents/gone", {"title": "mine now"}, headers=headers), 409
        )["detail"]
        assert "deleted" in detail and "restore" in detail
    _problem(writer("GET", "/documents/gone"), 404)
    _problem(writer("GET", "/documents/gone/versions"), 404)
    _problem(writer("GET", "/documents/gone/versions/1"), 404)
    _problem(writer("POST", "/documents/gone/versions/1/restore", headers={"If-Match": "*"}), 404)
    _problem(writer("POST", "/documents/gone/restore"), 403)  # restoring is admin-only
    back = admin("POST", "/documents/gone/restore")
    assert back.status == 200 and back.json()["title"] == "secret v1"


# ------------------------------------------------------------ request policy
@pytest.mark.parametrize("value", ["abc", "W/abc", '"abc', 'abc, "def"', "**"])
def test_unquoted_if_match_is_a_400_not_a_412(invoke: Any, value: str) -> None:
    doc = invoke("POST", "/documents", {"title": "etag"}).json()
    for method, path, body in (
        ("PUT", f"/documents/{doc['id']}", {"title": "x"}),
        ("DELETE", f"/documents/{doc['id']}", None),
        ("PATCH", f"/documents/{doc['id']}", {"title": "x"}),
    ):
        headers = (
            {"If-Match": value, "Content-Type": "application/merge-patch+json"}
            if method == "PATCH"
            else {"If-Match": value}
        )
        detail = _problem(invoke(method, path, body, headers=headers), 400)["detail"]
        assert "quoted" in detail
    assert invoke("GET", f"/documents/{doc['id']}").json()["version"] == 1


def test_idempotent_replay_rechecks_the_callers_role(container: Any) -> None:
    org = f"idem-{uuid.uuid4().hex[:8]}"
    key = {"Idempotency-Key": f"k-{uuid.uuid4().hex}"}
    first = _org_api(org)("POST", "/documents", {"title": "once"}, headers=key)
    assert first.status == 201
    again = _org_api(org)("POST", "/documents", {"title": "once"}, headers=key)
    assert again.status == 201 and again.headers.get("idempotent-replayed") == "true"
    demoted = _org_api(org, roles=("reader",))("POST", "/documents", {"title": "once"}, headers=key)
    _problem(demoted, 403)
    assert "id" not in demoted.json()


def test_audit_records_the_servers_request_id_beside_the_clients(
    container: Any, database_url: str
) -> None:
    org = f"aud-{uuid.uuid4().hex[:8]}"
    r = _org_api(org)(
        "POST", "/documents", {"title": "a"}, headers={"X-Request-Id": "client-chosen"}
    )
    assert r.status == 201 and r.headers["x-request-id"] == "client-chosen"
    with psycopg.connect(database_url) as conn:
        row = conn.execute(
            "SELECT request_id, details FROM audit_log WHERE org = %s", (org,)
        ).fetchone()
    assert row is not None
    assert row[0] != "client-chosen" and uuid.UUID(row[0])
    assert row[1]["client_request_id"] == "client-chosen"


@pytest.mark.parametrize(
    "ops",
    [
        [{"op": "replace", "path": "/body/a/b", "value": 1}],
        [{"op": "add", "path": "/tags/x", "value": "t"}],
        [{"op": "add", "path": "/tags/9", "value": "t"}],
        [{"op": "remove", "path": "/metadata/nope"}],
        [{"op": "move", "from": "/body", "path": "/body/inner"}],
        [{"op": "test", "path": "/body", "value": "not it"}],
    ],
)
def test_patch_errors_speak_of_the_patch_not_of_python(invoke: Any, ops: Any) -> None:
    doc = invoke("POST", "/documents", {"title": "p", "body": {"a": 7, "secret": "s3cr3t"}}).json()
    r = invoke("PATCH", f"/documents/{doc['id']}", ops,
               headers={"Content-Type": "application/json-patch+json", "If-Match": doc["etag"]})  # fmt: skip
    assert r.status in (409, 422), r
    detail = r.json()["detail"]
    assert "Operation 0" in detail
    for internal in ("<class", "s3cr3t", "__getitem__", "Traceback"):
        assert internal not in detail


@pytest.mark.parametrize(
    ("raw", "expected"),
    [(b'{"title": \xff}', "UTF-8"), (b'{"title": }', "line 1, column 11"), (b"9" * 5000, "finite")],
)
def test_body_errors_name_no_decoder_internals(invoke: Any, raw: bytes, expected: str) -> None:
    r = invoke("POST", "/documents", raw=raw)
    detail = _problem(r, 400)["detail"]
    assert expected in detail and "codec" not in detail and "0x" not in detail
