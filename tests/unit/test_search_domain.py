"""Search domain: queries are always org-scoped, documents flatten predictably,
page tokens and feed cursors are validated."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from chalicelib.domain.errors import BadRequest, ValidationFailed
from chalicelib.domain.search import (
    FeedCursor,
    build_query,
    decode_page_token,
    encode_page_token,
    flatten_text,
    index_id,
    parse_search_request,
    search_document,
    shape_results,
    split_index_id,
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
    body = build_query("acme", req, None)
    filters = body["query"]["bool"]["filter"]
    assert filters[0] == {"term": {"org": "acme"}}
    assert "from" not in body  # never deep offsets


def test_query_shapes() -> None:
    req = parse_search_request({"q": "a -b", "filter": {"tags": ["x", "y"]}})
    body = build_query("o", req, [1.5, "id-1"])
    must = body["query"]["bool"]["must"][0]["simple_query_string"]
    assert must["query"] == "a -b" and must["lenient"] is True
    assert {"term": {"tags": "x"}} in body["query"]["bool"]["filter"]
    assert {"term": {"tags": "y"}} in body["query"]["bool"]["filter"]
    assert body["search_after"] == [1.5, "id-1"]
    assert body["sort"][0] == {"_score": "desc"} and "highlight" in body
    browse = build_query("o", parse_search_request({}), None)
    assert browse["query"]["bool"]["must"] == [{"match_all": {}}]
    assert browse["sort"][0] == {"updated_at": "desc"} and "highlight" not in browse


@pytest.mark.parametrize(
    "data", [{"q": 1}, {"size": 0}, {"filter": {"x": 1}}, {"zzz": 1}, [], "q", None]
)
def test_invalid_requests(data) -> None:
    with pytest.raises(ValidationFailed):
        parse_search_request(data)


def test_page_tokens_are_bound_to_their_search() -> None:
    req = parse_search_request({"q": "a", "size": 2})
    token = encode_page_token(req, [1.0, "x"], SECRET)
    same = parse_search_request({"q": "a", "size": 5, "page_token": token})  # size may change
    assert decode_page_token(same, SECRET) == [1.0, "x"]
    with pytest.raises(BadRequest):
        decode_page_token(parse_search_request({"q": "b", "page_token": token}), SECRET)
    with pytest.raises(BadRequest):
        decode_page_token(parse_search_request({"q": "a", "page_token": token}), "other" * 8)


def test_results_get_a_next_token_only_when_the_page_is_full() -> None:
    req = parse_search_request({"q": "a", "size": 1})
    raw = {"hits": {"total": {"value": 3}, "hits": [
        {"_id": "o:d1", "_score": 2.0, "sort": [2.0, "d1"], "_source": {"id": "d1", "title": "t",
         "version": 1, "updated_at": "x"}, "highlight": {"title": ["<em>a</em>"]}}]}}  # fmt: skip
    out = shape_results(raw, req, SECRET)
    assert out["total"] == 3 and out["hits"][0]["highlight"] == {"title": ["<em>a</em>"]}
    assert decode_page_token(
        parse_search_request({"q": "a", "page_token": out["next_page_token"]}), SECRET
    ) == [2.0, "d1"]
    raw["hits"]["hits"] = []
    assert shape_results(raw, req, SECRET)["next_page_token"] is None


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
    assert doc.index_id == "o:d" and doc.version == 3
    assert doc.source is not None
    assert doc.source["body_text"] == "y" and doc.source["content_text"] is None
    ready = search_document(_row(content={"status": "ready"}), max_chars=100)
    assert ready.source is not None and ready.source["content_text"] == "pdf words"
    assert search_document(_row(deleted_at=NOW), max_chars=100).source is None


def test_index_ids_split_unambiguously() -> None:
    assert split_index_id(index_id("org:with:colons", "doc-1")) == ("org:with:colons", "doc-1")


def test_feed_cursors() -> None:
    assert FeedCursor.parse(None) == FeedCursor(0, 0)
    assert FeedCursor.parse("0") == FeedCursor(0, 0)
    c = FeedCursor(123, 45)
    assert FeedCursor.parse(c.encode()) == c
    assert FeedCursor(1, 9) < FeedCursor(2, 0)
    for bad in ("x", "1-", "-1-2", "1-2-3", "a-b"):
        with pytest.raises(BadRequest):
            FeedCursor.parse(bad)


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
