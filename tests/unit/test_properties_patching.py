"""Properties of patch application (domain/patching.py): RFC 7396 and RFC 6902
semantics on the editable fields, atomicity, and limits on the *result*."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chalicelib.domain.errors import Conflict, PayloadTooLarge, ValidationFailed
from chalicelib.domain.model import Limits, json_depth, json_size
from chalicelib.domain.patching import apply_json_patch, apply_merge_patch
from tests.unit.properties import BOUNDED, editable, json_values

REFUSED = (ValidationFailed, PayloadTooLarge, Conflict)


def merge(target: Any, patch: Any) -> Any:
    """RFC 7396's reference algorithm, written out."""
    if not isinstance(patch, dict):
        return patch
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge(result.get(key), value)
    return result


merge_patches = st.fixed_dictionaries(
    {}, optional={"body": json_values, "metadata": st.dictionaries(st.text(max_size=5), json_values,
                                                                    max_size=3)},
)  # fmt: skip


@BOUNDED
@given(current=editable, patch=merge_patches)
def test_a_merge_patch_is_rfc_7396_and_leaves_the_current_document_alone(
    current: dict[str, Any], patch: dict[str, Any]
) -> None:
    before = copy.deepcopy(current)
    try:
        result = apply_merge_patch(current, patch).model_dump()
    except REFUSED:
        result = None
    assert current == before, "the stored document is never changed in place"
    if result is not None:
        assert result == {"body": None, "tags": [], "metadata": {}, **merge(before, patch)}


@BOUNDED
@given(current=editable, value=json_values)
def test_add_then_remove_is_the_identity_and_a_failed_test_changes_nothing(
    current: dict[str, Any], value: Any
) -> None:
    before = copy.deepcopy(current)
    ops = [{"op": "add", "path": "/metadata/~1new~0key", "value": value},
           {"op": "remove", "path": "/metadata/~1new~0key"}]  # fmt: skip
    if "/new~key" not in current["metadata"]:
        assert apply_json_patch(current, ops).model_dump() == before
    with pytest.raises(Conflict):  # the last op fails: the whole patch is refused
        apply_json_patch(current, [*ops[:1], {"op": "test", "path": "/title", "value": 0}])
    assert current == before


SMALL = Limits(max_bytes=300, max_depth=5, max_patch_ops=6)
paths = st.sampled_from(["/body", "/body/a", "/body/0", "/metadata/a", "/metadata/b", "/tags/0",
                         "/tags/-", "/title"])  # fmt: skip
ops = st.one_of(
    st.builds(lambda p, v: {"op": "add", "path": p, "value": v}, paths, json_values),
    st.builds(lambda p, v: {"op": "replace", "path": p, "value": v}, paths, json_values),
    st.builds(lambda p: {"op": "remove", "path": p}, paths),
    st.builds(lambda f, p: {"op": "copy", "from": f, "path": p}, paths, paths),
    st.builds(lambda f, p: {"op": "move", "from": f, "path": p}, paths, paths),
)


@BOUNDED
@given(current=editable, patch=st.lists(ops, max_size=8))
def test_a_json_patch_result_is_within_the_limits_or_refused(
    current: dict[str, Any], patch: list[dict[str, Any]]
) -> None:
    before = copy.deepcopy(current)
    try:
        result = apply_json_patch(current, patch, SMALL).model_dump()
    except REFUSED:
        assert current == before
        return
    assert len(patch) <= SMALL.max_patch_ops
    # the limit is measured on the patch result before DocumentIn fills in the
    # defaults of fields a patch removed (known: at most these bytes over)
    assert json_size(result) <= SMALL.max_bytes + len('"body":null,"tags":[],"metadata":{},')
    assert json_depth(result, SMALL.max_depth + 1) <= SMALL.max_depth
    assert current == before


@BOUNDED
@given(current=editable, copies=st.integers(1, 12))
def test_copy_doubling_never_builds_more_than_the_limit(
    current: dict[str, Any], copies: int
) -> None:
    """Each op doubles /body: the result is refused (413/422) or within the limit."""
    limits = Limits(max_bytes=2000, max_depth=32, max_patch_ops=20)
    patch = [{"op": "copy", "from": "/body", "path": "/body/0"} for _ in range(copies)]
    seed = {**current, "body": [current["body"]]}
    try:
        result = apply_json_patch(seed, patch, limits)
    except REFUSED:
        return
    assert json_size(result.model_dump()) <= limits.max_bytes
