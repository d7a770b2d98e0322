"""POST /search and GET /changes through the Lambda handler: contract, paging,
filters, validation, the changes feed's cursor; and the sync Lambda handlers."""

from __future__ import annotations

import json
import threading
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from devtools.events import LambdaContext
from tests.conftest import (
    OPENSEARCH_URL,
    Invoker,
    admin_connection,
    make_token,
    post_search,
    read_feed,
    sync_search,
)

pytestmark = pytest.mark.integration
EVENTS = Path(__file__).resolve().parents[2] / "events"


def _org() -> str:
    return f"org-{uuid.uuid4().hex[:8]}"


def _api(org: str, roles: tuple[str, ...] = ("writer",), sub: str = "alice") -> Invoker:
    return Invoker(make_token(org=org, sub=sub, roles=roles))


@pytest.fixture
def corpus(search_container) -> tuple[Any, str, list[dict[str, Any]]]:
    org = _org()
    alice, bob = _api(org), _api(org, sub="bob")
    docs = []
    for i in range(7):
        who = alice if i % 2 == 0 else bob
        r = who("POST", "/documents", {"title": f"Design note {i}", "tags": ["design"] + (["api"] if i < 3 else []),
                                     "body": {"sections": [{"text": f"chapter {i} about caching"}]}})  # fmt: skip
        assert r.status == 201
        docs.append(r.json())
    sync_search(search_container)
    return search_container, org, docs


def test_search_contract_and_highlight(corpus) -> None:
    _, org, docs = corpus
    result = post_search(_api(org, roles=("reader",)), q="caching chapter", size=50)
    assert result["total"] == 7 and len(result["hits"]) == 7
    assert result["next_page_token"] is None
    hit = result["hits"][0]
    assert set(hit) == {"id", "title", "score", "version", "updated_at", "highlight"}
    assert any("<em>caching</em>" in frag for frag in hit["highlight"]["body_text"])
    assert {h["id"] for h in result["hits"]} == {d["id"] for d in docs}


def test_highlights_escape_the_documents_own_markup(search_container) -> None:
    org = _org()
    api = _api(org)
    r = api("POST", "/documents", {"title": "t", "body": "hello <script>alert(1)</script> & co"})
    assert r.status == 201
    sync_search(search_container)
    fragment = post_search(api, q="hello")["hits"][0]["highlight"]["body_text"][0]
    assert "<script>" not in fragment and "&lt;script&gt;" in fragment
    assert "<em>hello</em>" in fragment


def test_filters_tags_owner_and_time(corpus) -> None:
    _, org, docs = corpus
    api = _api(org)
    assert post_search(api, filter={"tags": ["api"]})["total"] == 3
    assert post_search(api, filter={"tags": ["api", "design"]})["total"] == 3
    assert post_search(api, filter={"owner": "bob"})["total"] == 3
    later = datetime.now(UTC) + timedelta(minutes=1)
    assert post_search(api, filter={"updated_after": later.isoformat()})["total"] == 0
    assert post_search(api, filter={"updated_before": later.isoformat()})["total"] == 7


def test_pages_follow_tokens_without_repeats(corpus) -> None:
    _, org, docs = corpus
    api = _api(org)
    seen: list[str] = []
    token = None
    for _ in range(10):
        page = post_search(api, size=3, sort="updated", **({"page_token": token} if token else {}))
        seen += [h["id"] for h in page["hits"]]
        token = page["next_page_token"]
        if token is None:
            break
    assert sorted(seen) == sorted(d["id"] for d in docs)
    assert len(seen) == len(set(seen))
    # newest first
    assert seen == [d["id"] for d in sorted(docs, key=lambda d: d["updated_at"], reverse=True)]


@pytest.mark.skipif(
    not OPENSEARCH_URL,
    reason="the in-memory stand-in ignores search_after when sorting by _score",
)
def test_relevance_pages_follow_tokens_without_repeats(corpus) -> None:
    _, org, docs = corpus
    api = _api(org)
    first = post_search(api, q="caching", size=4)
    second = post_search(api, q="caching", size=4, page_token=first["next_page_token"])
    ids = [h["id"] for h in first["hits"] + second["hits"]]
    assert sorted(ids) == sorted(d["id"] for d in docs)


def test_bad_syntax_is_searched_not_a_500(corpus) -> None:
    _, org, _ = corpus
    api = _api(org)
    for q in ('"unclosed', "caching +(", "-", "AND OR NOT", "*", "a" * 1000):
        r = api("POST", "/search", {"q": q})
        assert r.status == 200, (q, r)


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"q": 5}, 422),
        ({"size": 0}, 422),
        ({"size": 101}, 422),
        ({"filter": {"colour": "red"}}, 422),
        ({"unknown": 1}, 422),
        ({"sort": "random"}, 422),
        ({"filter": {"updated_after": "yesterday"}}, 422),
        (["q"], 422),
        ({"page_token": "not-a-token"}, 400),
    ],
)
def test_invalid_requests_are_problems(search_container, body, status) -> None:
    r = _api(_org())("POST", "/search", body)
    assert r.status == status, r
    assert r.headers["content-type"] == "application/problem+json"


def test_a_page_token_only_continues_its_own_search(corpus) -> None:
    _, org, _ = corpus
    api = _api(org)
    token = post_search(api, size=2, sort="updated")["next_page_token"]
    r = api("POST", "/search", {"size": 2, "sort": "updated", "q": "other", "page_token": token})
    assert r.status == 400 and "different search" in r.json()["detail"]
    tampered = token[:-2] + ("AA" if not token.endswith("AA") else "BB")
    assert api("POST", "/search", {"size": 2, "page_token": tampered}).status == 400


@pytest.mark.parametrize(
    "token",
    ["x", "eyJhIjpbbnVsbCxudWxsXX0.AAAAAAAAAAAAAAAA", "a.b.c", "é.é", "." * 50, "e30.e30"],
)
def test_unsigned_or_garbled_page_tokens_are_a_generic_400(search_container, token) -> None:
    r = _api(_org())("POST", "/search", {"q": "x", "page_token": token})
    assert r.status == 400 and r.json()["detail"] == (
        "page_token is not valid; use the next_page_token of a response."
    )


def test_search_needs_a_token_and_a_role(search_container) -> None:
    org = _org()
    assert _api(org)("POST", "/search", {}, token=False).status == 401
    assert _api(org, roles=("guest",))("POST", "/search", {}).status == 403


# ------------------------------------------------------------------ changes feed


def test_changes_feed_resumes_exactly_from_a_cursor(search_container) -> None:
    org, other = _org(), _org()
    api = _api(org)
    ids = []
    for i in range(12):
        ids.append(api("POST", "/documents", {"title": f"c{i}"}).json()["id"])
        _api(other)("POST", "/documents", {"title": "noise"})
    first = api("GET", f"/documents/{ids[0]}")
    api("DELETE", f"/documents/{ids[0]}", headers={"If-Match": first.headers["etag"]})

    seen: list[dict[str, Any]] = []
    cursor = "0"
    while len(seen) < 13:
        page = read_feed(api, f"since={cursor}&limit=5", expect=1)
        if not page["changes"]:
            break
        seen += page["changes"]
        cursor = page["next"]
    assert [c["id"] for c in seen] == [*ids, ids[0]]
    assert [c["deleted"] for c in seen] == [False] * 12 + [True]
    assert seen[-1]["version"] == 2
    assert len({c["seq"] for c in seen}) == 13

    # resuming from the last cursor gives exactly what happened since, nothing twice
    new = api("POST", "/documents", {"title": "after"}).json()["id"]
    page = read_feed(api, f"since={cursor}", expect=1)
    assert [c["id"] for c in page["changes"]] == [new]
    assert read_feed(api, f"since={page['next']}")["changes"] == []


def test_changes_feed_never_skips_a_transaction_that_commits_late(search_container) -> None:
    """A change whose transaction started first but commits last must not fall
    behind a cursor handed out before it committed."""
    c, org = search_container, _org()
    api = _api(org)
    start = read_feed(api, "since=now")["next"]
    holding, release, done = threading.Event(), threading.Event(), threading.Event()
    now = datetime.now(UTC)

    def slow_writer() -> None:
        # the document and its outbox row, without the audit row: an audited write takes
        # the org's audit-chain lock until it commits (migration 0009), so a second
        # audited write of the org would wait for this one instead of overtaking it.
        # Overtaking still happens (an outbox seq is drawn before that lock is taken),
        # and this is the shape of it: a lower seq that commits after a higher one.
        with c.uow.transaction(org) as tx:
            tx.conn.execute(
                "INSERT INTO documents (org, id, title, version, owner, created_at, updated_at) "
                "VALUES (%s, 'slow', 'slow', 1, 'alice', %s, %s)",
                (org, now, now),
            )
            tx.conn.execute(
                "INSERT INTO outbox (org, doc_id, version, op) VALUES (%s, 'slow', 1, 'upsert')",
                (org,),
            )
            holding.set()
            release.wait(10)
        done.set()

    t = threading.Thread(target=slow_writer)
    t.start()
    try:
        assert holding.wait(10)
        fast = api("POST", "/documents", {"title": "fast"}).json()["id"]
        page = read_feed(api, f"since={start}")
        assert page["changes"] == []  # the fast one waits behind the open transaction
        cursor = page["next"]
    finally:
        release.set()
        t.join()
    assert done.is_set()
    page = read_feed(api, f"since={cursor}", expect=2)
    assert sorted(ch["id"] for ch in page["changes"]) == sorted(["slow", fast])


def test_changes_longpoll_returns_when_something_changes(search_container) -> None:
    org = _org()
    api = _api(org)
    cursor = read_feed(api, "since=now")["next"]
    result: dict[str, Any] = {}

    def poll() -> None:
        result["page"] = read_feed(_api(org), f"since={cursor}&feed=longpoll&timeout=10")

    t = threading.Thread(target=poll)
    t.start()
    created = api("POST", "/documents", {"title": "wake"}).json()["id"]
    t.join()
    assert [ch["id"] for ch in result["page"]["changes"]] == [created]


@pytest.mark.parametrize(
    "query", ["since=abc", "since=1-x", "limit=0", "limit=1001", "feed=continuous",
              "feed=longpoll&timeout=99", "feed=longpoll&timeout=x", "timeout=-1", "timeout=nan"],
)  # fmt: skip
def test_changes_bad_parameters_are_400(search_container, query) -> None:
    r = _api(_org())("GET", f"/changes?{query}")
    assert r.status == 400, r
    assert r.headers["content-type"] == "application/problem+json"


# ------------------------------------------------------------------ health + handlers
def test_health_reports_search_and_sync_lag(search_container) -> None:
    body = _api(_org())("GET", "/health", token=False).json()
    assert body["checks"]["search"] == "ok"
    assert body["search_sync_lag_s"] >= 0


def test_nudge_and_sweep_handlers_sync_the_outbox(search_container) -> None:
    from functions import sync_search

    c, org = search_container, _org()
    c.search_sync.reindex()  # the alias exists (else the first batch would build it, and all)
    api = _api(org)
    doc = api("POST", "/documents", {"title": "nudged"}).json()
    other = api("POST", "/documents", {"title": "swept"}).json()
    event = json.loads((EVENTS / "sqs_search_nudge.json").read_text())
    event["Records"] = event["Records"][:1]
    event["Records"][0]["body"] = json.dumps({"org": org, "id": doc["id"], "version": 1})
    out = sync_search.handler(event, LambdaContext.new())
    assert out == {"batchItemFailures": []}
    c.search_index.refresh()
    assert post_search(api, q="nudged")["total"] == 1
    assert post_search(api, q="swept")["total"] == 0  # only the nudged document

    scheduled = json.loads((EVENTS / "scheduled_sweep.json").read_text())
    report = sync_search.sweep_handler(scheduled, LambdaContext.new())
    assert report["rows"] >= 1 and report["backlog"] == 0
    c.search_index.refresh()
    assert [h["id"] for h in post_search(api, q="swept")["hits"]] == [other["id"]]


def test_nudge_handler_reports_failures_for_sqs_to_retry(search_container) -> None:
    from functions import sync_search

    c, org = search_container, _org()
    doc = _api(org)("POST", "/documents", {"title": "retry me"}).json()
    c.search_index.settings = c.search_index.settings.model_copy(
        update={"opensearch_url": "http://127.0.0.1:9"}
    )
    c.search_index._client = None  # an OpenSearch that does not answer
    c.search_sync.forget_index()
    event = json.loads((EVENTS / "sqs_search_nudge.json").read_text())
    for record in event["Records"]:
        record["body"] = json.dumps({"org": org, "id": doc["id"], "version": 1})
    out = sync_search.handler(event, LambdaContext.new())
    ids = [f["itemIdentifier"] for f in out["batchItemFailures"]]
    assert ids == [r["messageId"] for r in event["Records"]]  # FIFO: the rest come back too


def test_pruned_changes_answer_410_for_old_cursors_and_keep_pending_rows(search_container) -> None:
    c, org = search_container, _org()
    api = _api(org)
    for i in range(3):
        assert api("POST", "/documents", {"title": f"old {i}"}).status == 201
    c.search_sync.drain()  # processed: may be pruned once old enough
    first = read_feed(api, "since=0", expect=3)
    assert len(first["changes"]) == 3
    mid = first["next"]
    pending = api("POST", "/documents", {"title": "not yet synced"}).json()["id"]
    with admin_connection(c) as conn:
        conn.execute("UPDATE outbox SET created_at = now() - interval '40 days'")
    assert c.search_sync.prune() == 3  # the unsynced row stays, however old
    with admin_connection(c) as conn:
        left = conn.execute("SELECT doc_id FROM outbox").fetchall()
    assert [r["doc_id"] for r in left] == [pending]

    r = api("GET", "/changes?since=0")
    assert r.status == 410 and r.headers["content-type"] == "application/problem+json"
    assert "since=now" in r.json()["detail"]
    page = read_feed(api, f"since={mid}", expect=1)  # a cursor past the pruned range works
    assert [ch["id"] for ch in page["changes"]] == [pending]
    assert c.search_sync.prune() == 0
