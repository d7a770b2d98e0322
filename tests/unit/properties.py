"""Shared hypothesis settings and strategies for the property tests (test_properties_*).

Bounded and reproducible in CI: a fixed number of examples, no deadline (a
shared 2-core machine), derandomized (the same examples every run), no example
database.  Run them harder locally with ``HYPOTHESIS_EXAMPLES=5000``.
"""

from __future__ import annotations

import os
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

BOUNDED = settings(
    max_examples=int(os.environ.get("HYPOTHESIS_EXAMPLES", "60")),
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)

# text PostgreSQL can store (no NUL, no lone surrogates)
text = st.text(
    st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=12
)
scalars = st.none() | st.booleans() | st.integers(-(10**6), 10**6) | text
json_values: st.SearchStrategy[Any] = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(text, inner, max_size=4),
    max_leaves=12,
)
editable = st.fixed_dictionaries(
    {
        "title": st.text(st.characters(blacklist_categories=("Cs", "Cc")), min_size=1, max_size=20),
        "body": json_values,
        "tags": st.lists(st.text(st.characters(blacklist_categories=("Cs", "Cc")), min_size=1,
                                 max_size=8), max_size=4, unique=True),
        "metadata": st.dictionaries(text, json_values, max_size=4),
    }
)  # fmt: skip
