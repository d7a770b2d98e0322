"""Personal-data metadata fields: never in clear at rest, in the cache or the index.

Real PostgreSQL, Redis and an OpenSearch-compatible server: each test reads the
raw stored forms (the table row as the admin, the Redis value, the index
document) and looks for the clear value, then reads through the API as a
reader of the document, who must see it in clear.  Keys: local keyrings (two,
for rotation) and KMS (moto, in process).
"""

from __future__ import annotations

import base64
import json
import os
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from chalicelib import bootstrap
from tests.conftest import (
    REDIS_URL,
    Invoker,
    admin_connection,
    create_database,
    drop_database,
    drop_search_indexes,
    make_token,
    post_search,
    sync_search,
)

pytestmark = pytest.mark.integration

EMAIL = "Alice.Secret@example.com"
PHONE = "+33 6 12 34 56 78"
K1 = "k1:" + base64.b64encode(b"1" * 32).decode()
K2 = "k2:" + base64.b64encode(b"2" * 32).decode()
K1_WRONG = "k1:" + base64.b64encode(b"9" * 32).decode()
BLIND = base64.b64encode(b"b" * 32).decode()


@pytest.fixture(scope="module")
def pii_env(settings: Any, opensearch_url: str) -> Iterator[dict[str, Any]]:
    """One database and index alias for the module; each test has its own org."""
    url = create_database()
    alias = f"pii{uuid.uuid4().hex[:8]}-docs"
    base = settings.model_copy(
        update={
            "database_url": url,
            "opensearch_url": opensearch_url,
            "search_alias": alias,
            "pii_fields": ("email", "phone"),
            "pii_local_keys": K1,
            "pii_blind_key": BLIND,
        }
    )
    yield {"settings": base}
    drop_search_indexes(opensearch_url, alias)
    drop_database(url)


def _container(env: dict[str, Any], **update: Any) -> Any:
    built = bootstrap.build(env["settings"].model_copy(update=update))
    bootstrap.set_container(built)
    return built


@pytest.fixture
def c(pii_env: dict[str, Any]) -> Iterator[Any]:
    built = _container(pii_env)
    yield built
    bootstrap.set_container(None)
    built.close()


def _api(org: str, roles: tuple[str, ...] = ("admin",)) -> Invoker:
    return Invoker(make_token(org=org, roles=roles))


def _org() -> str:
    return f"pii-{uuid.uuid4().hex[:8]}"


def _create(api: Invoker, **metadata: Any) -> dict[str, Any]:
    r = api("POST", "/documents", {"title": "contract", "metadata": metadata})
    assert r.status == 201, r
    return r.json()


def _raw_redis(c: Any) -> dict[str, bytes]:
    client = redis.Redis.from_url(REDIS_URL)
    prefix = c.settings.redis_key_prefix
    out: dict[str, bytes] = {}
    for key in client.scan_iter(match=f"{prefix}*"):
        kind = client.type(key)
        if kind == b"string":
            out[key.decode()] = client.get(key) or b""
        elif kind == b"hash":
            out[key.decode()] = repr(client.hgetall(key)).encode()
    return out


def test_pii_is_ciphertext_in_the_table_the_cache_and_the_index(
    c: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    org = _org()
    api = _api(org)
    doc = _create(api, email=EMAIL, phone=PHONE, team="blue")
    assert doc["metadata"] == {"email": EMAIL, "phone": PHONE, "team": "blue"}  # the writer

    with admin_connection(c) as conn:
        row = conn.execute(
            "SELECT metadata FROM documents WHERE org = %s AND id = %s", (org, doc["id"])
        ).fetchone()
        versions = conn.execute(
            "SELECT metadata::text AS m FROM document_versions WHERE org = %s", (org,)
        ).fetchall()
        audit = conn.execute("SELECT details::text AS d FROM audit_log WHERE org = %s", (org,))
        audit_rows = audit.fetchall()
    stored = row["metadata"]
    assert stored["team"] == "blue"
    for name in ("email", "phone"):
        assert stored[name]["$enc"] == "v1" and stored[name]["kid"] == "k1"
        assert set(stored[name]) == {"$enc", "kid", "wk", "iv", "ct", "bi"}
    assert stored["email"]["ct"] != stored["phone"]["ct"]
    for text in [json.dumps(stored), *(v["m"] for v in versions), *(a["d"] for a in audit_rows)]:
        assert "Secret" not in text and "12 34" not in text

    # a reader gets the clear value, from the cache (the write published it), then
    # from PostgreSQL once the entry is gone
    reader = _api(org, ("reader",))
    doc_key = c.cache._doc_key(org, doc["id"])
    first = reader("GET", f"/documents/{doc['id']}")
    redis.Redis.from_url(REDIS_URL).delete(doc_key)
    second = reader("GET", f"/documents/{doc['id']}")
    assert (first.headers["x-cache"], second.headers["x-cache"]) == ("hit", "miss")
    for r in (first, second):
        assert r.json()["metadata"] == {"email": EMAIL, "phone": PHONE, "team": "blue"}
    listed = reader("GET", "/documents")
    listed_again = reader("GET", "/documents")
    assert listed_again.headers["x-cache"] == "hit"
    for r in (listed, listed_again):
        assert r.json()["items"][0]["metadata"]["email"] == EMAIL

    cached = _raw_redis(c)
    assert b'"$enc":' in cached[doc_key]
    assert any(b"contract" in v for v in cached.values())  # the list page is there ...
    for value in cached.values():  # ... and nothing cached holds a clear value
        assert b"Secret" not in value and b"12 34" not in value

    sync_search(c)
    indexed = [src for _, (_, src) in c.search_index.all_documents().items() if src["org"] == org]
    assert len(indexed) == 1
    assert "Secret" not in json.dumps(indexed[0]) and "metadata" not in indexed[0]
    assert len(indexed[0]["pii"]) == 2  # blind-index tokens only

    # exact match through the blind index (case and spaces ignored), org-bound
    hits = post_search(reader, filter={"metadata": {"email": f"  {EMAIL.upper()} "}})["hits"]
    assert [h["id"] for h in hits] == [doc["id"]]
    assert "metadata" not in hits[0]  # hits never carry metadata
    assert post_search(reader, filter={"metadata": {"email": "bob@example.com"}})["total"] == 0
    other = _api(_org(), ("reader",))
    assert post_search(other, filter={"metadata": {"email": EMAIL}})["total"] == 0
    r = reader("POST", "/search", {"filter": {"metadata": {"team": "blue"}}})
    assert r.status == 422 and "personal-data" in r.json()["detail"]

    out = capsys.readouterr()
    assert "Secret" not in out.out + out.err  # nor in the logs


def test_patches_and_versions_work_on_clear_values(c: Any) -> None:
    api = _api(_org())
    doc = _create(api, email=EMAIL)
    patch = [
        {"op": "test", "path": "/metadata/email", "value": EMAIL},
        {"op": "replace", "path": "/metadata/email", "value": "new@example.com"},
    ]
    r = api("PATCH", f"/documents/{doc['id']}", patch,
            headers={"If-Match": doc["etag"], "Content-Type": "application/json-patch+json"})  # fmt: skip
    assert r.status == 200, r
    assert r.json()["metadata"]["email"] == "new@example.com"
    old = api("GET", f"/documents/{doc['id']}/versions/1")
    assert old.json()["metadata"]["email"] == EMAIL
    r = api("POST", f"/documents/{doc['id']}/versions/1/restore",
            headers={"If-Match": r.json()["etag"]})  # fmt: skip
    assert r.status == 200 and r.json()["metadata"]["email"] == EMAIL
    # an Idempotency-Key replay compares clear values (fresh nonces every time)
    body = {"title": "once", "metadata": {"email": EMAIL}}
    first = api("POST", "/documents", body, headers={"Idempotency-Key": "k-1"})
    again = api("POST", "/documents", body, headers={"Idempotency-Key": "k-1"})
    assert first.status == again.status == 201
    assert again.json()["id"] == first.json()["id"]
    assert again.json()["metadata"]["email"] == EMAIL  # the replay opens the stored answer
    stored = [v.decode(errors="replace") for v in _raw_redis(c).values()]
    assert any('"once' in s or '\\"once' in s for s in stored)  # the record is there ...
    assert not any("Secret" in s for s in stored)  # ... with the value sealed


def test_rotation_old_values_open_new_writes_use_the_new_key_reencrypt_moves_all(
    pii_env: dict[str, Any],
) -> None:
    org = _org()
    c1 = _container(pii_env, pii_local_keys=K1)
    try:
        old = _create(_api(org), email=EMAIL)
    finally:
        c1.close()
    c2 = _container(pii_env, pii_local_keys=f"{K2},{K1}")  # k2 active, k1 still readable
    try:
        api = _api(org)
        assert api("GET", f"/documents/{old['id']}").json()["metadata"]["email"] == EMAIL
        new = _create(api, email="bob@example.com")
        with admin_connection(c2) as conn:
            rows = conn.execute(
                "SELECT id, metadata->'email'->>'kid' AS kid FROM documents WHERE org = %s",
                (org,),
            ).fetchall()
        kids = {r["id"]: r["kid"] for r in rows}
        assert kids == {old["id"]: "k1", new["id"]: "k2"}
        report = c2.pii.reencrypt(c2.pii_reencryption_store)
        assert report["documents"] >= 1 and report["rows"] >= 2  # the row and its version
        assert c2.pii.reencrypt(c2.pii_reencryption_store)["rows"] == 0  # idempotent
        with admin_connection(c2) as conn:
            left = conn.execute(
                "SELECT count(*) AS n FROM document_versions WHERE metadata::text LIKE %s",
                ('%"kid": "k1"%',),
            ).fetchone()
        assert left["n"] == 0
    finally:
        c2.close()
    c3 = _container(pii_env, pii_local_keys=K2)  # k1 retired
    try:
        redis.Redis.from_url(REDIS_URL).delete(
            c3.cache._doc_key(org, old["id"])
        )  # (a cached entry sealed under k1 would have expired with the cache TTL)
        r = _api(org)("GET", f"/documents/{old['id']}")
        assert r.status == 200 and r.json()["metadata"]["email"] == EMAIL
        assert _api(org)("GET", f"/documents/{old['id']}/versions/1").status == 200
    finally:
        c3.close()
        bootstrap.set_container(None)


@pytest.mark.parametrize(
    ("keys", "why"), [(K1_WRONG, "same kid, wrong key"), (K2, "unknown kid"), (None, "no key")]
)
def test_a_wrong_or_missing_key_is_a_503_that_leaks_nothing(
    pii_env: dict[str, Any], keys: str | None, why: str
) -> None:
    org = _org()
    good = _container(pii_env)
    try:
        doc = _create(_api(org), email=EMAIL)
    finally:
        good.close()
    bad = _container(pii_env, pii_local_keys=keys)
    try:
        api = _api(org)
        for path in (f"/documents/{doc['id']}", "/documents", f"/documents/{doc['id']}/versions/1"):
            r = api("GET", path)
            assert r.status == 503, (why, path, r)
            assert r.headers["content-type"].startswith("application/problem+json")
            assert r.json()["type"].endswith("/encryption-key-unavailable")
            assert "Secret" not in r.text and "Traceback" not in r.text
        r = api("POST", "/documents", {"title": "t", "metadata": {"email": "x@example.com"}})
        if keys is None:  # never stored in clear for want of a key
            assert r.status == 503, r
            with admin_connection(bad) as conn:
                n = conn.execute(
                    "SELECT count(*) AS n FROM documents WHERE org = %s", (org,)
                ).fetchone()
            assert n["n"] == 1
        assert api("POST", "/documents", {"title": "plain", "metadata": {"a": 1}}).status == 201
    finally:
        bad.close()
        bootstrap.set_container(None)


def test_kms_envelopes_cache_the_data_key_and_rotate_between_keys() -> None:
    """In AWS the master key is a KMS key: one GenerateDataKey serves many values,
    a value opens after the active key changed, and a tampered envelope is refused."""
    from moto import mock_aws

    from chalicelib.adapters.pii import EnvelopeCipher, KmsKeyring
    from chalicelib.domain.errors import KeyUnavailable

    os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
    with mock_aws():
        import boto3

        kms = boto3.client("kms", region_name="us-east-1")
        key1 = kms.create_key()["KeyMetadata"]["Arn"]
        key2 = kms.create_key()["KeyMetadata"]["Arn"]
        one = EnvelopeCipher(KmsKeyring(key1, "us-east-1"), blind_key=b"b" * 32)
        sealed = [one.encrypt(v, context="ctx", blind=None) for v in (EMAIL, PHONE, 42)]
        assert one.generated == 1 and all(e["kid"] == key1 for e in sealed)
        assert "Secret" not in json.dumps(sealed)
        two = EnvelopeCipher(KmsKeyring(key2, "us-east-1"), blind_key=b"b" * 32)
        assert [two.decrypt(e, context="ctx") for e in sealed] == [EMAIL, PHONE, 42]
        assert two.unwrapped == 1  # one data key, unwrapped once, then cached
        assert two.encrypt("x", context="ctx", blind=None)["kid"] == key2
        with pytest.raises(KeyUnavailable):
            two.decrypt(sealed[0], context="another document")
        tampered = {**sealed[0], "ct": sealed[1]["ct"]}
        with pytest.raises(KeyUnavailable):
            two.decrypt(tampered, context="ctx")
