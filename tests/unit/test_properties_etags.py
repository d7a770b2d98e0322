"""Properties of the ETag and version rules (domain/model.py)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chalicelib.domain.errors import BadRequest
from chalicelib.domain.model import (
    Document,
    DocumentIn,
    _etag_list,
    check_precondition_header,
    if_match_satisfied,
    if_none_match_matches,
    make_etag,
)
from tests.unit.properties import BOUNDED, editable

orgs = st.text(min_size=1, max_size=10)
ids = st.from_regex(r"[A-Za-z0-9._-]{1,20}", fullmatch=True)
versions = st.integers(1, 10**9)
# entity tags as RFC 9110 writes them (etagc: no DQUOTE, no space; commas allowed)
etags = st.builds(
    lambda weak, opaque: f'{"W/" if weak else ""}"{opaque}"',
    st.booleans(),
    st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E, blacklist_characters='"'),
            max_size=10),
)  # fmt: skip


@BOUNDED
@given(org=orgs, doc_id=ids, version=versions, other=versions)
def test_an_etag_is_strong_quoted_and_names_one_version(
    org: str, doc_id: str, version: int, other: int
) -> None:
    etag = make_etag(org, doc_id, version)
    assert etag.startswith('"') and etag.endswith('"') and not etag.startswith("W/")
    check_precondition_header("If-Match", etag)  # a client may send it back as it came
    assert if_match_satisfied(etag, etag) and if_match_satisfied("*", etag)
    assert if_none_match_matches(etag, etag) and if_none_match_matches(f"W/{etag}", etag)
    if other != version:
        assert make_etag(org, doc_id, other) != etag
        assert not if_match_satisfied(make_etag(org, doc_id, other), etag)
    assert not if_match_satisfied(f"W/{etag}", etag), "If-Match compares strongly"


@BOUNDED
@given(tags=st.lists(etags, min_size=1, max_size=5), spaces=st.sampled_from(["", " ", "\t "]))
def test_a_list_of_etags_parses_back_to_its_members(tags: list[str], spaces: str) -> None:
    header = f"{spaces},{spaces}".join(tags)
    assert _etag_list(header) == tags
    check_precondition_header("If-Match", header)
    for tag in tags:
        if not tag.startswith("W/"):
            assert if_match_satisfied(header, tag)


@BOUNDED
@given(value=st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1,
                     max_size=12).filter(lambda v: '"' not in v and v != "*"))  # fmt: skip
def test_an_unquoted_value_is_a_400(value: str) -> None:
    with pytest.raises(BadRequest):
        check_precondition_header("If-Match", value)


@BOUNDED
@given(before=editable, after=editable, version=versions)
def test_every_change_is_the_next_version_with_a_new_etag(
    before: dict[str, object], after: dict[str, object], version: int
) -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    doc = Document("o", "d", before["title"], before["body"], before["tags"],  # type: ignore[arg-type]
                   before["metadata"], version, "me", now, now)  # type: ignore[arg-type]  # fmt: skip
    changed = doc.with_changes(DocumentIn.model_validate(after), at=now)
    assert changed.version == version + 1
    assert changed.etag != doc.etag and changed.deleted_at is None
