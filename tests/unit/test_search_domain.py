"""Search domain: queries are always org-scoped, documents flatten predictably,
page tokens and feed cursors are validated."""

from __future__ import annotations

import base64
import struct
from datetime import UTC, datetime

import pytest

from chalicelib.domain.changes import FeedCursor, feed_sealer
from chalicelib.domain.errors import BadRequest, ValidationFailed
from chalicelib.domain.keys import join_key
from chalicelib.domain.pagination import encode_token, page_scope
from chalicelib.domain.search import (
    build_query,
    decode_page_token,
    encode_page_token,
    parse_search_request,
    shape_results,
)
from chalicelib.domain.search_index import (
    SCHEMA_VERSION,
    flatten_text,
    index_body,
    index_id,
    search_document,
)

SECRET = "s" * 32
NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


@pytest.mark.parametrize(
    "data",
    [
        {},
        {"q": "x"},
        {"q": "x", "filter": {"tags": ["a", "b"], "owner": "o"}},
        {"filter": {"updated_after": "2026-01-01T00:00:00Z"}, "sort": "relevance"},
    ],
)
def test_every_query_is_filtered_by_the_callers_org(data) -> None:
    req = parse_search_request(data)
    body = build_query("acme", req, None, viewer=None)
    filters = body["query"]["bool"]["filter"]
    assert filters[0] == {"term": {"org": "acme"}}
    assert "from" not in body  # never deep offsets


def test_query_shapes() -> None:
    req = parse_search_request({"q": "a -b", "filter": {"tags": ["x", "y"]}})
    body = build_query("o", req, [1.5, 1700000000000, "id-1"], viewer=None)
    must = body["query"]["bool"]["must"][0]["simple_query_string"]
    assert must["query"] == "a -b" and must["lenient"] is True
    assert "FUZZY" not in must["flags"] and "PREFIX" in must["flags"]
    assert {"term": {"tags": "x"}} in body["query"]["bool"]["filter"]
    assert {"term": {"tags": "y"}} in body["query"]["bool"]["filter"]
    assert body["search_after"] == [1.5, 1700000000000, "id-1"]
    assert body["sort"] == [{"_score": "desc"}, {"updated_at": "desc"}, {"id": "asc"}]
    assert "highlight" in body
    browse = build_query("o", parse_search_request({}), None, viewer=None)
    assert browse["query"]["bool"]["must"] == [{"match_all": {}}]
    assert browse["sort"][0] == {"updated_at": "desc"} and "highlight" not in browse


@pytest.mark.parametrize(
    "data", [{"q": 1}, {"size": 0}, {"filter": {"x": 1}}, {"zzz": 1}, [], "q", None]
)
def test_invalid_requests(data) -> None:
    with pytest.raises(ValidationFailed):
        parse_search_request(data)


def test_page_tokens_are_bound_to_their_search_and_org() -> None:
    req = parse_search_request({"q": "a", "size": 2})
    token = encode_page_token(req, [1.0, 5, "x"], SECRET, "acme")
    same = parse_search_request({"q": "a", "size": 5, "page_token": token})  # size may change
    assert decode_page_token(same, SECRET, "acme") == [1.0, 5, "x"]
    with pytest.raises(BadRequest):
        decode_page_token(parse_search_request({"q": "b", "page_token": token}), SECRET, "acme")
    with pytest.raises(BadRequest):
        decode_page_token(parse_search_request({"q": "a", "page_token": token}), "o" * 8, "acme")
    with pytest.raises(BadRequest, match="different search"):
        decode_page_token(same, SECRET, "acme:other")


def test_a_page_token_of_another_endpoint_does_not_continue_a_search() -> None:
    for scope in (page_scope("acme", "GET /documents", tag=None), "", "acme"):
        token = encode_token({"a": [1.0, 5, "x"]}, SECRET, scope)
        with pytest.raises(BadRequest, match="different search"):
            decode_page_token(parse_search_request({"q": "a", "page_token": token}), SECRET, "acme")


@pytest.mark.parametrize(
    ("sort", "after"),
    [
        ("relevance", [None, None]),
        ("relevance", [None, None, None]),
        ("relevance", [1.0, "x"]),  # a token of the previous release: two values
        ("relevance", [float("nan"), 1, "x"]),
        ("relevance", [float("inf"), 1, "x"]),
        ("relevance", [-1.0, 1, "x"]),
        ("relevance", [True, 1, "x"]),
        ("relevance", ["1", 1, "x"]),
        ("relevance", [1.0, 1.5, "x"]),
        ("relevance", [1.0, 10**30, "x"]),
        ("relevance", [1.0, 1, {"a": 1}]),
        ("relevance", [1.0, 1, "has space"]),
        ("relevance", [1.0, 1, "x" * 129]),
        ("relevance", [1.0, 1, "x\n"]),
        ("relevance", [1.0, 1, "x", "extra"]),
        ("updated", [None, None]),
        ("updated", [1, None]),
        ("updated", ["2026-01-01", "x"]),
        ("updated", [False, "x"]),
        ("updated", [[], "x"]),
        ("updated", {"a": [1, "x"]}),
        ("updated", "1,x"),
        ("updated", [1, "x", 2]),
    ],
)
def test_signed_page_tokens_with_odd_sort_values_are_refused(sort, after) -> None:
    """Even a validly signed token never sends OpenSearch anything but the
    exact sort values of a hit (what a leaked secret could forge is bounded)."""
    req = parse_search_request({"q": "a", "sort": sort})
    token = encode_page_token(req, after, SECRET, "acme")
    with pytest.raises(BadRequest) as err:
        decode_page_token(
            parse_search_request({"q": "a", "sort": sort, "page_token": token}), SECRET, "acme"
        )
    assert err.value.detail == "page_token is not valid; use the next_page_token of a response."


def test_results_get_a_next_token_only_when_the_page_is_full() -> None:
    req = parse_search_request({"q": "a", "size": 1})
    raw = {"hits": {"total": {"value": 3}, "hits": [
        {"_id": "1:o2:d1", "_score": 2.0, "sort": [2.0, 7, "d1"], "_source": {"id": "d1",
         "title": "t", "version": 1, "updated_at": "x"}, "highlight": {"title": ["<em>a</em>"]}}]}}  # fmt: skip
    out = shape_results(raw, req, SECRET, "o", total=2, exact=True)
    assert out["total"] == 2 and out["total_relation"] == "eq"  # the index's 3 is not used
    assert out["hits"][0]["highlight"] == {"title": ["<em>a</em>"]}
    assert decode_page_token(
        parse_search_request({"q": "a", "page_token": out["next_page_token"]}), SECRET, "o"
    ) == [2.0, 7, "d1"]
    raw["hits"]["hits"] = []
    out = shape_results(raw, req, SECRET, "o", total=1000, exact=False)
    assert out["next_page_token"] is None and out["total_relation"] == "gte"


def test_flatten_text_takes_strings_in_order_up_to_a_limit() -> None:
    body = {"a": "one", "b": [1, {"c": "two"}, None, "three"], "d": True}
    assert flatten_text(body, 1000) == "one\ntwo\nthree"
    assert flatten_text(body, 5) == "one\nt"
    assert flatten_text(None, 10) == ""


def _row(**extra: object) -> dict[str, object]:
    row = {"org": "o", "id": "d", "title": "T", "body": {"x": "y"}, "tags": ["t"],
           "owner": "me", "version": 3, "created_at": NOW, "updated_at": NOW,
           "deleted_at": None, "content": None, "content_text": "pdf words"}  # fmt: skip
    row.update(extra)
    return row


def test_indexed_form() -> None:
    doc = search_document(_row(), max_chars=100)
    assert doc.index_id == "1:o1:d" and doc.version == 3
    assert doc.source is not None
    assert doc.source["body_text"] == "y" and doc.source["content_text"] is None
    ready = search_document(_row(content={"status": "ready"}), max_chars=100)
    assert ready.source is not None and ready.source["content_text"] == "pdf words"
    assert search_document(_row(deleted_at=NOW), max_chars=100).source is None


def test_index_ids_are_injective() -> None:
    assert index_id("x:y", "z") != index_id("x", "y:z")
    assert index_id("acme", "doc-1") == "4:acme5:doc-1"


@pytest.mark.parametrize(
    ("a", "b"),
    [
        (("x:y", "z"), ("x", "y:z")),
        (("1:a", ""), ("", "1:a")),
        (("ab", "c"), ("a", "bc")),
        (("a",), ("a", "")),
        (("1:x",), ("1", "x")),
        (("é", "x"), ("e", "x")),
    ],
)
def test_join_key_never_maps_two_tuples_to_one_key(a, b) -> None:
    assert join_key(*a) != join_key(*b)
    assert join_key("x:y", "z") == "3:x:y1:z"


def test_the_mapping_scores_without_corpus_statistics() -> None:
    mappings = index_body(1, 0)["mappings"]
    assert mappings["_meta"] == {"schema": SCHEMA_VERSION}
    for name in ("title", "body_text", "content_text"):
        assert mappings["properties"][name]["similarity"] == "boolean"


def test_feed_cursors_are_sealed_and_bound_to_the_org() -> None:
    sealer = feed_sealer(SECRET)
    assert FeedCursor.parse(None, "acme", sealer) == FeedCursor(0, 0)
    assert FeedCursor.parse("0", "acme", sealer) == FeedCursor(0, 0)
    c = FeedCursor(123, 45)
    token = c.encode("acme", sealer)
    assert FeedCursor.parse(token, "acme", sealer) == c
    raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    assert struct.pack(">QQ", 123, 45) not in raw  # encrypted, not encoded
    assert token != c.encode("acme", sealer)  # a fresh nonce each time
    assert len(token) == len(FeedCursor(2**63, 2**62).encode("acme", sealer))
    assert FeedCursor(1, 9) < FeedCursor(2, 0)
    tampered = token[:10] + ("A" if token[10] != "A" else "B") + token[11:]
    other_secret = FeedCursor(123, 45).encode("acme", feed_sealer("t" * 32))
    for bad in ("x", "1-", "123-45", "-1-2", "a-b", tampered, token + "A", token[:-1], other_secret,
                "now ", "é", "+" + token[1:]):  # fmt: skip
        with pytest.raises(BadRequest):
            FeedCursor.parse(bad, "acme", sealer)
    with pytest.raises(BadRequest):
        FeedCursor.parse(token, "acme2", sealer)  # another org's cursor


@pytest.mark.parametrize(
    "data",
    [
        {"highlight": 0},
        {"size": 6.5},
        {"size": "5"},
        {"size": True},
        {"q": None},
        {"filter": {"tags": [1]}},
        {"filter": {"updated_before": 0}},
        {"filter": {"updated_after": "2026-01-01T00:00:00"}},  # no time zone: ambiguous
    ],
)
def test_no_silent_coercion_of_request_fields(data) -> None:
    with pytest.raises(ValidationFailed):
        parse_search_request(data)


def test_json_integers_and_aware_timestamps_are_accepted() -> None:
    req = parse_search_request({"size": 6.0, "filter": {"updated_after": "2026-01-01T00:00:00Z"}})
    assert req.size == 6 and req.filter.updated_after is not None
