"""Idempotency-Key on POST, with Redis and with the PostgreSQL fallback."""

from __future__ import annotations

import pytest

from chalicelib import bootstrap
from chalicelib.config import Settings
from devtools.services import free_port
from tests.conftest import Invoker, admin_connection, make_token

pytestmark = pytest.mark.integration


def _count(settings: Settings, title: str) -> int:
    import psycopg

    with psycopg.connect(settings.database_url) as conn:
        return conn.execute("SELECT count(*) FROM documents WHERE title = %s", (title,)).fetchone()[
            0
        ]


def test_same_key_same_body_replays_the_first_response(invoke, settings) -> None:
    headers = {"Idempotency-Key": "create-once-1"}
    first = invoke("POST", "/documents", {"title": "idem-a"}, headers=headers)
    again = invoke("POST", "/documents", {"title": "idem-a"}, headers=headers)
    assert first.status == again.status == 201
    assert again.json() == first.json()
    assert again.headers["location"] == first.headers["location"]
    assert again.headers.get("idempotent-replayed") == "true"
    assert "idempotent-replayed" not in first.headers
    assert _count(settings, "idem-a") == 1


def test_same_key_other_body_is_422_and_keys_are_per_caller(invoke, settings) -> None:
    headers = {"Idempotency-Key": "create-once-2"}
    assert invoke("POST", "/documents", {"title": "idem-b"}, headers=headers).status == 201
    r = invoke("POST", "/documents", {"title": "idem-b-changed"}, headers=headers)
    assert r.status == 422 and r.headers["content-type"] == "application/problem+json"
    other = Invoker(make_token(org="another-org"))
    assert other("POST", "/documents", {"title": "idem-b"}, headers=headers).status == 201
    assert _count(settings, "idem-b") == 2 and _count(settings, "idem-b-changed") == 0


def test_a_retry_after_an_unknown_commit_outcome_creates_nothing_twice(
    invoke, container, settings
) -> None:
    """The first attempt commits, then answers 503 (as when the connection drops
    during COMMIT): the key was not remembered, yet the retry finds that document."""
    from chalicelib.domain.errors import DependencyUnavailable

    real_publish = container.documents._publish
    calls = {"n": 0}

    def publish_then_fail(doc, **kwargs):
        calls["n"] += 1
        if calls["n"] == 1:
            raise DependencyUnavailable("The database connection was lost while committing.")
        real_publish(doc, **kwargs)

    container.documents._publish = publish_then_fail
    headers = {"Idempotency-Key": "commit-lost-1"}
    first = invoke("POST", "/documents", {"title": "idem-lost", "tags": ["t"]}, headers=headers)
    assert first.status == 503
    assert _count(settings, "idem-lost") == 1  # it did commit
    retry = invoke("POST", "/documents", {"title": "idem-lost", "tags": ["t"]}, headers=headers)
    assert retry.status == 201, retry
    assert retry.json()["version"] == 1 and retry.json()["title"] == "idem-lost"
    assert _count(settings, "idem-lost") == 1
    again = invoke("POST", "/documents", {"title": "idem-lost", "tags": ["t"]}, headers=headers)
    assert again.json()["id"] == retry.json()["id"]
    # once the key's record has expired, reusing it for another document is
    # refused (422), never answered with the old document
    from chalicelib.domain.errors import ValidationFailed
    from chalicelib.domain.model import idempotent_id
    from chalicelib.domain.principal import Principal

    who = Principal("alice", "acme", frozenset({"writer"}))
    doc_id = idempotent_id("acme", "alice", "commit-lost-1")
    assert doc_id == retry.json()["id"]
    with pytest.raises(ValidationFailed):
        container.documents.create(who, {"title": "something else"}, doc_id=doc_id, replay=True)
    assert _count(settings, "something else") == 0


def test_changes_are_idempotent_too(invoke) -> None:
    doc = invoke("POST", "/documents", {"title": "c"}).json()
    headers = {
        "Idempotency-Key": "change-1",
        "If-Match": doc["etag"],
        "Content-Type": "application/merge-patch+json",
    }
    first = invoke("POST", f"/documents/{doc['id']}/changes", {"title": "c2"}, headers=headers)
    retry = invoke("POST", f"/documents/{doc['id']}/changes", {"title": "c2"}, headers=headers)
    assert first.status == retry.status == 200, "the retry is not a 412: it gets the first answer"
    assert retry.json()["version"] == 2


def test_failed_requests_are_not_remembered(invoke) -> None:
    headers = {"Idempotency-Key": "bad-then-good"}
    assert invoke("POST", "/documents", {"title": ""}, headers=headers).status == 422
    assert invoke("POST", "/documents", {"title": ""}, headers=headers).status == 422
    assert invoke("POST", "/documents", {"title": "", "x": 1}, headers=headers).status == 422


def test_postgres_fallback_when_redis_is_down(settings) -> None:
    down = settings.model_copy(update={"redis_url": f"redis://127.0.0.1:{free_port()}/0"})
    built = bootstrap.build(down)
    bootstrap.set_container(built)
    try:
        invoke = Invoker(make_token(org="fallback-org"))
        headers = {"Idempotency-Key": "while-redis-is-down"}
        first = invoke("POST", "/documents", {"title": "idem-pg"}, headers=headers)
        again = invoke("POST", "/documents", {"title": "idem-pg"}, headers=headers)
        assert first.status == again.status == 201 and again.json()["id"] == first.json()["id"]
        assert invoke("POST", "/documents", {"title": "other"}, headers=headers).status == 422
        assert _count(settings, "idem-pg") == 1
        # the stored response is a tenant row: it carries its org, and another org's
        # transaction (row-level security) does not see it
        with admin_connection(settings) as conn:
            orgs = conn.execute("SELECT DISTINCT org FROM idempotency_keys").fetchall()
        assert {"org": "fallback-org"} in orgs and {"org": None} not in orgs
        with built.uow.transaction("another-org") as tx:
            row = tx.conn.execute("SELECT count(*) AS n FROM idempotency_keys").fetchone()
        assert row == {"n": 0}
    finally:
        bootstrap.set_container(None)
        built.uow.close()


def test_a_key_first_seen_during_a_redis_outage_still_replays_after_it(settings) -> None:
    down = settings.model_copy(update={"redis_url": f"redis://127.0.0.1:{free_port()}/0"})
    during = bootstrap.build(down)
    bootstrap.set_container(during)
    headers = {"Idempotency-Key": "across-the-outage"}
    try:
        invoke = Invoker(make_token(org="outage-org"))
        first = invoke("POST", "/documents", {"title": "idem-outage"}, headers=headers)
        assert first.status == 201
    finally:
        bootstrap.set_container(None)
        during.close()
    after = bootstrap.build(settings)  # Redis is back: its store has no record of the key
    bootstrap.set_container(after)
    try:
        invoke = Invoker(make_token(org="outage-org"))
        retry = invoke("POST", "/documents", {"title": "idem-outage"}, headers=headers)
        assert retry.status == 201 and retry.json()["id"] == first.json()["id"]
        assert _count(settings, "idem-outage") == 1
    finally:
        bootstrap.set_container(None)
        after.close()


# ---------------------------------------------------------------- replays re-check
@pytest.fixture
def pii_container(settings: Settings):
    """The real container with a personal-data field (``email``), sealed at rest."""
    import base64

    built = bootstrap.build(
        settings.model_copy(
            update={
                "pii_fields": ("email",),
                "pii_local_keys": "k1:" + base64.b64encode(b"1" * 32).decode(),
                "pii_blind_key": base64.b64encode(b"b" * 32).decode(),
            }
        )
    )
    bootstrap.set_container(built)
    yield built
    bootstrap.set_container(None)
    built.close()


def _org_callers() -> tuple[str, Invoker, Invoker]:
    import uuid

    org = f"idem-{uuid.uuid4().hex[:8]}"
    owner = Invoker(make_token(org=org, sub="olga", roles=("writer",)))
    gary = Invoker(make_token(org=org, sub="gary", roles=("writer",)))
    return org, owner, gary


PATCH = {"Content-Type": "application/merge-patch+json"}


def test_a_replay_after_the_grant_is_revoked_answers_as_a_fresh_request(pii_container) -> None:
    """A stored answer is a read of the document: once the caller may no longer
    read it, the replay is the 404 a fresh request gets, with no field in clear."""
    _, owner, gary = _org_callers()
    doc = owner("POST", "/documents", {"title": "hr", "metadata": {"email": "eve@example.com"},
                                       "visibility": "private"}).json()  # fmt: skip
    assert owner("PUT", f"/documents/{doc['id']}/grants/gary", {"role": "writer"}).status == 200
    etag = owner("GET", f"/documents/{doc['id']}").headers["etag"]
    headers = {**PATCH, "Idempotency-Key": "revoked-1", "If-Match": etag}
    path = f"/documents/{doc['id']}/changes"
    first = gary("POST", path, {"title": "hr 2"}, headers=headers)
    assert first.status == 200 and first.json()["metadata"]["email"] == "eve@example.com", first
    again = gary("POST", path, {"title": "hr 2"}, headers=headers)
    assert again.status == 200 and again.headers.get("idempotent-replayed") == "true"

    assert owner("DELETE", f"/documents/{doc['id']}/grants/gary").status == 204
    replay = gary("POST", path, {"title": "hr 2"}, headers=headers)
    fresh = gary("POST", path, {"title": "hr 2"}, headers={**headers, "Idempotency-Key": "new"})
    assert replay.status == fresh.status == 404, replay
    assert replay.json() == fresh.json()
    assert "eve@example.com" not in replay.text and "idempotent-replayed" not in replay.headers

    # a reader grant: it may read, not write (403, as a fresh request)
    assert owner("PUT", f"/documents/{doc['id']}/grants/gary", {"role": "reader"}).status == 200
    replay = gary("POST", path, {"title": "hr 2"}, headers=headers)
    assert replay.status == 403 and "eve@example.com" not in replay.text, replay


def test_a_replayed_create_needs_the_document_to_be_readable_still(pii_container) -> None:
    _, owner, _ = _org_callers()
    headers = {"Idempotency-Key": "create-then-delete"}
    body = {"title": "mine", "metadata": {"email": "olga@example.com"}}
    first = owner("POST", "/documents", body, headers=headers)
    assert first.status == 201 and first.json()["metadata"]["email"] == "olga@example.com"
    assert owner("POST", "/documents", body, headers=headers).status == 201
    assert owner("DELETE", f"/documents/{first.json()['id']}").status == 204
    replay = owner("POST", "/documents", body, headers=headers)
    assert replay.status == 404 and "olga@example.com" not in replay.text, replay


def test_a_replay_with_a_lowered_role_is_refused(pii_container) -> None:
    org, owner, _ = _org_callers()
    headers = {"Idempotency-Key": "lowered-1"}
    body = {"title": "t", "metadata": {"email": "olga@example.com"}}
    assert owner("POST", "/documents", body, headers=headers).status == 201
    as_reader = Invoker(make_token(org=org, sub="olga", roles=("reader",)))
    replay = as_reader("POST", "/documents", body, headers=headers)
    assert replay.status == 403 and "olga@example.com" not in replay.text, replay


def test_another_caller_reusing_a_key_gets_no_stored_answer(pii_container) -> None:
    """Keys are scoped to the org and the caller: another user (same org) or the
    same user id in another org runs a fresh request."""
    org, owner, gary = _org_callers()
    doc = owner("POST", "/documents", {"title": "p", "metadata": {"email": "o@example.com"},
                                       "visibility": "private"}).json()  # fmt: skip
    headers = {**PATCH, "Idempotency-Key": "shared-key", "If-Match": doc["etag"]}
    path = f"/documents/{doc['id']}/changes"
    assert owner("POST", path, {"title": "p2"}, headers=headers).status == 200
    r = gary("POST", path, {"title": "p2"}, headers=headers)
    assert r.status == 404 and "o@example.com" not in r.text, r
    elsewhere = Invoker(make_token(org=f"{org}-b", sub="olga", roles=("writer",)))
    r = elsewhere("POST", path, {"title": "p2"}, headers=headers)
    assert r.status == 404 and "idempotent-replayed" not in r.headers, r
    created = owner("POST", "/documents", {"title": "k"}, headers={"Idempotency-Key": "k-1"})
    r = gary("POST", "/documents", {"title": "k"}, headers={"Idempotency-Key": "k-1"})
    assert r.status == 201 and "idempotent-replayed" not in r.headers
    assert r.json()["id"] != created.json()["id"] and r.json()["owner"] == "gary"
