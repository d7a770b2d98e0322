"""Key encoding (domain/keys.py): ``join_key`` is injective and ``split_key`` inverts it."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from chalicelib.domain.keys import join_key, split_key
from tests.unit.properties import BOUNDED

# parts as tokens may carry them: separators and digits included
parts = st.lists(st.text(alphabet=st.sampled_from("a:1/0é\x00 "), max_size=6), max_size=4)


@BOUNDED
@given(a=parts, b=parts)
def test_join_key_is_injective(a: list[str], b: list[str]) -> None:
    assert split_key(join_key(*a)) == tuple(a)
    if a != b:
        assert join_key(*a) != join_key(*b)


@BOUNDED
@given(prefix=parts, rest=parts)
def test_a_key_never_extends_another_s_parts(prefix: list[str], rest: list[str]) -> None:
    """Prefix-free: the key of some parts starts the key of more parts only as a whole."""
    joined = join_key(*prefix, *rest)
    assert joined.startswith(join_key(*prefix))
    assert split_key(joined)[: len(prefix)] == tuple(prefix)
