"""Attacks on search and the changes feed across orgs, and on their tokens.

* Relevance: one org's writes must not move another org's scores, order,
  totals or highlights (shared index statistics).
* The changes feed: cursors and ``seq`` must not expose global counters (the
  gaps between one org's values would count every other org's writes), and a
  cursor only works for the org it was issued to.
* Index ids: (org, id) → ``_id`` must be injective.
* Tokens: forged, odd or another org's page tokens are a 400 whose text says
  nothing about OpenSearch.

Real PostgreSQL and an OpenSearch-compatible server (OPENSEARCH_URL, else
the in-memory one), through the Lambda handler.
"""

from __future__ import annotations

import json
import re
import uuid
from typing import Any

import pytest

from chalicelib.domain.search import decode_page_token, encode_page_token, parse_search_request
from chalicelib.domain.search_index import SearchDocument
from tests.conftest import Invoker, make_token, post_search, read_feed, sync_search

pytestmark = pytest.mark.integration

SEALED = re.compile(r"^[A-Za-z0-9_-]{40,}$")
# what OpenSearch's (and Lucene's, and the JVM's) messages are made of
VENDOR_WORDS = ("exception", "lucene", "java", "opensearch", "search_after", "parsing",
                "value_", "null", "reason", "shard", "[")  # fmt: skip


def _org() -> str:
    return f"org-{uuid.uuid4().hex[:8]}"


def _api(org: str) -> Invoker:
    return Invoker(make_token(org=org, roles=("writer",)))


def _create(api: Invoker, title: str, body: Any = None) -> str:
    r = api("POST", "/documents", {"title": title, "body": body or {}})
    assert r.status == 201, r
    return str(r.json()["id"])


def _generic_400(r: Any) -> str:
    assert r.status == 400, r
    assert r.headers["content-type"] == "application/problem+json"
    detail = str(r.json()["detail"])
    assert not any(word in detail.lower() for word in VENDOR_WORDS), detail
    return detail


# ------------------------------------------------------------------ relevance
QUERIES: list[dict[str, Any]] = [
    {"q": "ledger audit"},
    {"q": "ledger", "size": 3},
    {"q": "ledger | invoice", "size": 50},
    {"q": '"quarterly ledger"'},
    {"q": "ledg*"},
    {"q": "ledger -draft"},
    {"q": "ledgr~1 audit"},  # fuzzy syntax: searched as words, no index-wide expansion
    {"q": "ledger", "sort": "updated"},
    {"q": "ledger", "highlight": False},
]


def test_another_orgs_writes_change_nothing_in_a_search(search_container) -> None:
    """Org B writes many documents with and without the query terms (rare and
    frequent words, long and short fields): org A's responses are identical,
    byte for byte: hits, order, scores, totals, highlights, and the position a
    page token holds (sealed with a fresh nonce, its text differs every time)."""
    org_a = _org()
    c, a, b = search_container, _api(org_a), _api(_org())

    def seen(query: dict[str, Any]) -> str:
        body = a("POST", "/search", query).json()
        if body["next_page_token"] is not None:
            req = parse_search_request({**query, "page_token": body["next_page_token"]})
            body["next_page_token"] = decode_page_token(req, c.settings.page_token_secret, org_a)
        return json.dumps(body)

    _create(a, "Quarterly ledger", {"text": "the ledger audit is due; ledger ledger"})
    _create(a, "Audit notes", {"text": "audit of the ledger, a very long note " + "word " * 300})
    _create(a, "ledger", {"text": "draft ledger"})
    _create(a, "Invoice", {"text": "invoice without the other word"})
    _create(a, "Ledger audit ledger audit", {"text": "short"})
    _create(b, "ledger", {"text": "ledger"})  # B shares the index from the start
    sync_search(c)
    before = [seen(q) for q in QUERIES]
    assert all('"total": 0' not in text for text in before[:5]), before

    for i in range(60):  # many B documents, and every kind of statistic moves
        if i % 3 == 0:
            _create(b, f"ledger audit {i}", {"text": "ledger " * (i + 1) + "invoice quarterly"})
        elif i % 3 == 1:
            _create(b, "x", {"text": "unrelated words only " * (i + 1)})
        else:
            _create(b, "ledgers ledge ledgr", {"text": "audit " * 50 + "draft"})
    sync_search(c)
    after = [seen(q) for q in QUERIES]
    assert after == before


# ------------------------------------------------------------------ changes feed


def _numbers(value: Any, path: str = "") -> list[tuple[str, Any]]:
    if isinstance(value, bool | str) or value is None:
        return []
    if isinstance(value, int | float):
        return [(path, value)]
    if isinstance(value, dict):
        return [n for k, v in value.items() for n in _numbers(v, f"{path}.{k}")]
    return [n for i, v in enumerate(value) for n in _numbers(v, f"{path}[{i}]")]


def _shape(page: dict[str, Any]) -> Any:
    """Everything of a feed page but the values that are the org's own (ids,
    timestamps), and the sealed strings reduced to their length."""
    return (
        sorted(page),
        len(page["next"]),
        [(sorted(ch), len(ch["seq"]), ch["version"], ch["deleted"]) for ch in page["changes"]],
    )


def _writes(api: Invoker, noise: Invoker | None) -> list[str]:
    """Two documents, one updated; ``noise`` (another org) writes in between."""
    ids = []
    for title in ("one", "two"):
        ids.append(_create(api, title))
        if noise is not None:
            for i in range(25):
                _create(noise, f"noise {i}")
    etag = api("GET", f"/documents/{ids[0]}").headers["etag"]
    r = api("PATCH", f"/documents/{ids[0]}", {"title": "one'"},
            headers={"Content-Type": "application/merge-patch+json", "If-Match": etag})  # fmt: skip
    assert r.status == 200, r
    return ids


def test_the_feed_reveals_nothing_about_other_orgs_writes(search_container) -> None:
    quiet, busy, noise = _api(_org()), _api(_org()), _api(_org())
    _writes(quiet, None)
    ids = _writes(busy, noise)  # the same writes, with 50 of another org's in between
    page_quiet, page_busy = read_feed(quiet, "since=0", 3), read_feed(busy, "since=0", 3)
    assert [ch["id"] for ch in page_busy["changes"]] == [ids[0], ids[1], ids[0]]

    # no number but the org's own document versions; cursors are sealed strings
    assert _numbers(page_busy) == [(f".changes[{i}].version", v) for i, v in enumerate([1, 1, 2])]
    for value in [page_busy["next"], *(ch["seq"] for ch in page_busy["changes"])]:
        assert isinstance(value, str) and SEALED.match(value), value
    # what the busy org sees has exactly the shape of what the quiet one sees
    assert _shape(page_busy) == _shape(page_quiet)
    # and the cursor for "nothing new" is a fresh string each time, moved or not
    again = read_feed(busy, f"since={page_busy['next']}")
    assert again["changes"] == [] and again["next"] != page_busy["next"]
    assert len(again["next"]) == len(page_busy["next"])


def test_a_feed_cursor_resumes_from_any_change_and_only_for_its_org(search_container) -> None:
    org, other = _org(), _org()
    api, intruder = _api(org), _api(other)
    ids = [_create(api, f"doc {i}") for i in range(4)]
    page = read_feed(api, "since=0", 4)
    assert [ch["id"] for ch in page["changes"]] == ids
    for i, change in enumerate(page["changes"]):  # a change's seq is a cursor
        rest = read_feed(api, f"since={change['seq']}", 3 - i)["changes"]
        assert [ch["id"] for ch in rest] == ids[i + 1 :]
    now = read_feed(api, "since=now")
    assert now["changes"] == [] and SEALED.match(now["next"])
    new = _create(api, "later")
    assert [ch["id"] for ch in read_feed(api, f"since={now['next']}", 1)["changes"]] == [new]

    # another org's cursor, a tampered one, an old-style plain one: 400, no detail
    cursor = page["changes"][1]["seq"]
    flipped = cursor[:20] + ("A" if cursor[20] != "A" else "B") + cursor[21:]
    for bad in (cursor, page["next"]):
        _generic_400(intruder("GET", f"/changes?since={bad}"))
    for bad in (flipped, cursor[:-4], "1-0", "999999999-0", "0-0"):
        _generic_400(api("GET", f"/changes?since={bad}"))


# ------------------------------------------------------------------ index ids
def test_index_ids_of_different_orgs_and_ids_never_collide(search_container) -> None:
    """``x:y``/``z`` and ``x``/``y:z`` were both ``x:y:z``: the second write was
    refused as an older version of the first, or replaced it."""
    index = search_container.search_index
    index.ensure()
    docs = [
        SearchDocument(org, doc_id, 1, {"org": org, "id": doc_id, "title": f"{org}/{doc_id}"})
        for org, doc_id in (("x:y", "z"), ("x", "y:z"), ("1:x", "y"), ("1", "x:y"))
    ]
    assert all(r.ok for r in index.write(docs, [index.alias]))
    index.refresh()
    held = index.all_documents()
    assert len(held) == len(docs)
    assert {(s["org"], s["id"]) for _, s in held.values()} == {(d.org, d.id) for d in docs}


# ------------------------------------------------------------------ page tokens
def _forged(c: Any, org: str, body: dict[str, Any], after: Any) -> str:
    """A page token signed with the server's secret (as if it had leaked, or a
    value the server itself once issued) carrying ``after`` as search_after."""
    req = parse_search_request(body)
    return encode_page_token(req, after, c.settings.page_token_secret, org)


ODD_SORT_VALUES = [
    [None, None],
    [None, None, None],
    ["x", {"a": 1}],
    [{"a": 1}, 1, "x"],
    [True, "x"],
    [1.5, 2, ["nested"]],
    ["NaN", 1, "x"],
    [1e308, 1, "x"],
    [1.0, 10**30, "x"],
    [1.0, 1, "id with spaces"],
    [1.0, 1, "x" * 300],
    [],
]


@pytest.mark.parametrize("after", ODD_SORT_VALUES)
@pytest.mark.parametrize("body", [{"q": "ledger"}, {"sort": "updated"}])
def test_signed_page_tokens_with_odd_values_are_a_generic_400(
    search_container, body, after
) -> None:
    c, org = search_container, _org()
    api = _api(org)
    _create(api, "ledger")
    sync_search(c)
    token = _forged(c, org, body, after)
    detail = _generic_400(api("POST", "/search", {**body, "page_token": token}))
    assert "page_token" in detail


def test_a_page_token_of_another_org_is_refused(search_container) -> None:
    c, org, other = search_container, _org(), _org()
    for api in (_api(org), _api(other)):
        for i in range(3):
            _create(api, f"ledger {i}")
    sync_search(c)
    token = post_search(_api(org), q="ledger", size=1, sort="updated")["next_page_token"]
    assert token
    r = _api(other)("POST", "/search", {"q": "ledger", "size": 1, "sort": "updated",
                                        "page_token": token})  # fmt: skip
    _generic_400(r)


def test_a_query_opensearch_refuses_is_a_generic_400_and_logged(search_container, caplog) -> None:
    """Whatever OpenSearch says about a refused query stays in the logs."""
    from chalicelib.domain.errors import BadRequest

    index = search_container.search_index
    index.ensure()
    caplog.clear()
    with pytest.raises(BadRequest) as err:
        index.search({"query": {"no_such_query": {}}, "search_after": [{"a": 1}]})
    assert not any(word in err.value.detail.lower() for word in VENDOR_WORDS), err.value.detail
    logged = [r for r in caplog.records if r.getMessage() == "search refused by opensearch"]
    assert logged and getattr(logged[0], "status", None) == 400
    assert "no_such_query" in str(getattr(logged[0], "reason", ""))


# ------------------------------------------------------------ figures and permissions
def _token_text(token: str) -> str:
    """What a page token carries, as far as a client can read it."""
    import base64

    raw = token.split(".", 1)[0]
    return base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)).decode(errors="replace")


def test_no_figure_of_a_search_counts_a_document_just_made_private(search_container) -> None:
    """The race of the probe: a document turns private (or is deleted) in
    PostgreSQL while the index still has it open to the org.  Nothing in the
    answer may count it: not ``total``, not the page token, not whether there is
    a next page."""
    org = _org()
    owner = Invoker(make_token(org=org, sub="olga", roles=("writer",)))
    reader = Invoker(make_token(org=org, sub="rita", roles=("reader",)))
    secret = [_create(owner, f"zebra secret {n}", {"t": "okapi"}) for n in range(3)]
    gone = _create(owner, "zebra gone", {"t": "okapi"})
    kept = _create(owner, "zebra kept", {"t": "okapi"})
    sync_search(search_container)
    before = post_search(reader, q="okapi")
    assert before["total"] == 5
    # committed in PostgreSQL, not yet in the index (no sync): the index still says open
    for doc_id in secret:
        r = owner("PUT", f"/documents/{doc_id}/visibility", {"visibility": "private"})
        assert r.status == 200, r
    assert owner("DELETE", f"/documents/{gone}").status == 204
    hidden = {*secret, gone}
    for size in (1, 2, 20):
        for sort in ("relevance", "updated"):
            result = post_search(reader, q="okapi", size=size, sort=sort)
            assert result["total"] == 1, result
            assert result["total_relation"] == "eq"
            assert [h["id"] for h in result["hits"]] == [kept][:size]
            token = result["next_page_token"]
            if token is not None:
                assert size == 1  # a full page of readable hits, and only then
                assert not any(doc_id in _token_text(token) for doc_id in hidden)
                more = post_search(reader, q="okapi", size=size, sort=sort, page_token=token)
                assert more["hits"] == [] and more["total"] == 1, more
    # a word only the hidden documents hold: an empty answer, whatever the index says
    assert post_search(reader, q="secret") == {
        "hits": [], "total": 0, "total_relation": "eq", "next_page_token": None,
    }  # fmt: skip
    # the owner still counts its private documents; once synced, the index agrees
    assert post_search(owner, q="okapi")["total"] == 4
    sync_search(search_container)
    assert post_search(reader, q="okapi")["total"] == 1
