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
