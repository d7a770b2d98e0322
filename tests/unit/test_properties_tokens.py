"""Properties of page tokens (domain/pagination.py) and sealed cursors (domain/sealed.py):
round trips, and nothing else is accepted (another secret, purpose, context, a change)."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chalicelib.domain.errors import BadRequest
from chalicelib.domain.pagination import decode_token, encode_token
from chalicelib.domain.sealed import Sealer
from tests.unit.properties import BOUNDED, text

cursors = st.dictionaries(
    st.text(max_size=8), st.none() | st.integers(-(2**53), 2**53) | text | st.booleans(),
    max_size=5,
)  # fmt: skip
SECRET = "s" * 40


@BOUNDED
@given(cursor=cursors)
def test_a_page_token_round_trips_and_only_under_its_secret(cursor: dict[str, Any]) -> None:
    token = encode_token(cursor, SECRET)
    assert decode_token(token, SECRET) == cursor
    with pytest.raises(BadRequest):
        decode_token(token, "t" * 40)


@BOUNDED
@given(cursor=cursors, at=st.integers(0, 10_000), char=st.sampled_from("AQgw_-0z"))
def test_a_changed_page_token_is_refused(cursor: dict[str, Any], at: int, char: str) -> None:
    token = encode_token(cursor, SECRET)
    i = at % len(token)
    changed = token[:i] + char + token[i + 1 :]
    try:
        decoded = decode_token(changed, SECRET)
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
