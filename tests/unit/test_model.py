from __future__ import annotations

import re

import pytest

from chalicelib.api.problems import PROBLEMS
from chalicelib.domain.errors import (
    BadRequest,
    PreconditionFailed,
    PreconditionRequired,
    ValidationFailed,
)
from chalicelib.domain.model import (
    ID_SCHEMA_PATTERN,
    if_match_satisfied,
    if_none_match_matches,
    is_valid_id,
    make_etag,
    new_id,
    parse_limit,
    validate_editable,
    validate_id,
)
from chalicelib.domain.pagination import decode_token, encode_token


def test_etag_is_strong_quoted_and_changes_with_version_org_and_id() -> None:
    tag = make_etag("acme", "d1", 1)
    assert tag.startswith('"') and tag.endswith('"') and not tag.startswith("W/")
    assert (
        len(
            {
                tag,
                make_etag("acme", "d1", 2),
                make_etag("other", "d1", 1),
                make_etag("acme", "d2", 1),
            }
        )
        == 4
    )
    assert make_etag("acme", "d1", 1) == tag


def test_if_match_uses_strong_comparison_and_star() -> None:
    tag = make_etag("acme", "d1", 3)
    assert if_match_satisfied(tag, tag)
    assert if_match_satisfied(f'"zzz", {tag}', tag)
    assert if_match_satisfied("*", tag)
    assert not if_match_satisfied(f"W/{tag}", tag)
    assert not if_match_satisfied('"other"', tag)
    assert not if_match_satisfied("*", None)


def test_if_none_match_uses_weak_comparison() -> None:
    tag = make_etag("acme", "d1", 3)
    assert if_none_match_matches(f"W/{tag}", tag)
    assert if_none_match_matches("*", tag)
    assert not if_none_match_matches('"nope"', tag)


def test_ids_are_ulids_sortable_by_time() -> None:
    ids = [new_id() for _ in range(50)]
    assert all(len(i) == 26 for i in ids)
    assert len(set(ids)) == 50
    validate_id(ids[0])


@pytest.mark.parametrize("bad", ["", "a/b", "x" * 129, "sp ace", "ü"])
def test_invalid_ids_are_rejected(bad: str) -> None:
    with pytest.raises(ValidationFailed):
        validate_id(bad)


def test_validation_reports_each_field() -> None:
    with pytest.raises(ValidationFailed) as err:
        validate_editable({"title": "", "tags": ["ok", ""], "extra": 1})
    locs = {tuple(e["loc"]) for e in err.value.errors or []}
    assert ("title",) in locs and ("extra",) in locs and ("tags",) in locs


def test_validation_accepts_any_json_body_and_dedupes_tags() -> None:
    for body in [None, 1, "s", [1, {"a": None}], {"k": [True]}]:
        assert validate_editable({"title": "t", "body": body}).body == body
    assert validate_editable({"title": "t", "tags": ["a", "b", "a"]}).tags == ["a", "b"]
    with pytest.raises(ValidationFailed):
        validate_editable(["not", "an", "object"])


def test_limit_bounds() -> None:
    assert parse_limit(None) == 20
    assert parse_limit("100") == 100
    for bad in ["0", "101", "x", "-1"]:
        with pytest.raises(BadRequest):
            parse_limit(bad)


def test_page_tokens_are_tamper_evident() -> None:
    token = encode_token({"c": "2026-01-01", "i": "x"}, "s1", "scope")
    assert decode_token(token, "s1", "scope") == {"c": "2026-01-01", "i": "x"}
    assert decode_token(None, "s1", "scope") is None
    for bad in [token + "x", token[1:], "garbage", token[:-2], token + "." + token]:
        with pytest.raises(BadRequest):
            decode_token(bad, "s1", "scope")
    with pytest.raises(BadRequest):
        decode_token(token, "other-secret", "scope")


def test_precondition_errors_are_distinct() -> None:
    assert PROBLEMS[PreconditionRequired].status == 428
    assert PROBLEMS[PreconditionFailed].status == 412


def test_the_openapi_id_pattern_is_the_id_rule() -> None:
    """JSON Schema anchors a pattern to the whole value: ``fullmatch`` is its reading."""
    for candidate in ("a", "A-b_c.d", "...", "a" * 128, ".", "..", "", "x\n", "a" * 129, "a/b"):
        schema_says = re.fullmatch(ID_SCHEMA_PATTERN, candidate) is not None
        assert schema_says == is_valid_id(candidate), candidate
