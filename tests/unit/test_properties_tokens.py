"""Properties of page tokens (domain/pagination.py) and sealed cursors (domain/sealed.py):
round trips, and nothing else is accepted (another secret, purpose, context, a change)."""

from __future__ import annotations

import base64
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chalicelib.domain.errors import BadRequest
from chalicelib.domain.pagination import decode_token, encode_token, page_scope
from chalicelib.domain.sealed import Sealer
from tests.unit.properties import BOUNDED, text

cursors = st.dictionaries(
    st.text(max_size=8), st.none() | st.integers(-(2**53), 2**53) | text | st.booleans(),
    max_size=5,
)  # fmt: skip
SECRET = "s" * 40
scopes = st.text("0123456789abcdef", min_size=32, max_size=32)  # what page_scope gives


@BOUNDED
@given(cursor=cursors)
def test_a_page_token_round_trips_and_only_under_its_secret(cursor: dict[str, Any]) -> None:
    token = encode_token(cursor, SECRET, "scope")
    assert decode_token(token, SECRET, "scope") == cursor
    with pytest.raises(BadRequest):
        decode_token(token, "t" * 40, "scope")


@BOUNDED
@given(cursor=cursors, at=st.integers(0, 10_000), char=st.sampled_from("AQgw_-0z"))
def test_a_changed_page_token_is_refused(cursor: dict[str, Any], at: int, char: str) -> None:
    token = encode_token(cursor, SECRET, "scope")
    i = at % len(token)
    changed = token[:i] + char + token[i + 1 :]
    try:
        decoded = decode_token(changed, SECRET, "scope")
    except BadRequest:
        return
    assert decoded == cursor, "a change is refused, or decodes to the same bytes (padding bits)"


@BOUNDED
@given(plain=st.binary(max_size=64), context=st.text(max_size=12), other=st.text(max_size=12))
def test_a_sealed_value_opens_only_for_its_purpose_and_context(
    plain: bytes, context: str, other: str
) -> None:
    sealer = Sealer(SECRET, "feed")
    token = sealer.seal(plain, context)
    assert sealer.unseal(token, context) == plain
    if other != context:
        with pytest.raises(ValueError, match="not a sealed value"):
            sealer.unseal(token, other)
    with pytest.raises(ValueError, match="not a sealed value"):
        Sealer(SECRET, "page").unseal(token, context)
    with pytest.raises(ValueError, match="not a sealed value"):
        Sealer("u" * 40, "feed").unseal(token, context)


@BOUNDED
@given(cursor=cursors, scope=scopes, other=scopes)
def test_a_page_token_opens_only_for_its_scope(
    cursor: dict[str, Any], scope: str, other: str
) -> None:
    token = encode_token(cursor, SECRET, scope)
    assert decode_token(token, SECRET, scope) == cursor
    if other != scope:
        with pytest.raises(BadRequest, match="does not belong to this query"):
            decode_token(token, SECRET, other)


@BOUNDED
@given(a=st.tuples(text, text, st.none() | text), b=st.tuples(text, text, st.none() | text))
def test_different_orgs_endpoints_or_filters_make_different_scopes(
    a: tuple[str, str, str | None], b: tuple[str, str, str | None]
) -> None:
    scope_a = page_scope(a[0], a[1], tag=a[2])
    assert scope_a == page_scope(*a[:2], tag=a[2])
    if a != b:
        assert scope_a != page_scope(b[0], b[1], tag=b[2])


@BOUNDED
@given(cursor=cursors)
def test_a_page_token_is_not_readable(cursor: dict[str, Any]) -> None:
    token = encode_token(cursor, SECRET, "scope")
    raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    assert b"scope" not in raw and "." not in token
    assert token != encode_token(cursor, SECRET, "scope")  # a fresh nonce each time
