from __future__ import annotations

import pytest

from chalicelib.domain.errors import Conflict, ValidationFailed
from chalicelib.domain.patching import JSON_PATCH, MERGE_PATCH, apply_patch

CURRENT = {"title": "Plan", "body": {"items": [1, 2], "owner": "a"}, "tags": ["q3"], "metadata": {}}


def test_json_patch_applies_all_operations() -> None:
    result = apply_patch(
        JSON_PATCH,
        CURRENT,
        [
            {"op": "test", "path": "/title", "value": "Plan"},
            {"op": "replace", "path": "/title", "value": "Plan B"},
            {"op": "add", "path": "/body/items/-", "value": 3},
            {"op": "remove", "path": "/body/owner"},
            {"op": "copy", "from": "/title", "path": "/metadata/old_title"},
            {"op": "move", "from": "/metadata/old_title", "path": "/metadata/t"},
        ],
    )
    assert result.title == "Plan B"
    assert result.body == {"items": [1, 2, 3]}
    assert result.metadata == {"t": "Plan B"}
    assert CURRENT["body"] == {"items": [1, 2], "owner": "a"}, "input must not be mutated"


def test_failed_test_op_is_conflict_and_atomic() -> None:
    before = {**CURRENT}
    with pytest.raises(Conflict):
        apply_patch(
            JSON_PATCH,
            CURRENT,
            [
                {"op": "replace", "path": "/title", "value": "changed"},
                {"op": "test", "path": "/title", "value": "nope"},
            ],
        )
    assert before == CURRENT


@pytest.mark.parametrize(
    "ops",
    [
        [{"op": "replace", "path": "/version", "value": 9}],
        [{"op": "add", "path": "/owner", "value": "mallory"}],
        [{"op": "copy", "from": "/org", "path": "/title"}],
        [{"op": "replace", "path": "", "value": {}}],
        [{"op": "remove", "path": "/body/missing"}],
        [{"op": "frobnicate", "path": "/title"}],
        [{"op": "replace", "path": "/title", "value": 42}],
        [{"op": "replace", "path": "/unknown", "value": 1}],
        {"op": "replace"},
        ["not an object"],
    ],
)
def test_bad_json_patches_are_validation_errors(ops: object) -> None:
    with pytest.raises(ValidationFailed):
        apply_patch(JSON_PATCH, CURRENT, ops)


def test_merge_patch_follows_rfc7396() -> None:
    result = apply_patch(
        MERGE_PATCH,
        CURRENT,
        {"title": "New", "body": {"owner": None, "x": {"y": 1}}, "tags": ["a"]},
    )
    assert result.title == "New"
    assert result.body == {"items": [1, 2], "x": {"y": 1}}
    assert result.tags == ["a"]


@pytest.mark.parametrize(
    "patch",
    [{"version": 2}, {"etag": "x"}, {"content": None}, {"title": None}, ["a"], {"nope": 1}],
)
def test_bad_merge_patches_are_rejected(patch: object) -> None:
    with pytest.raises(ValidationFailed):
        apply_patch(MERGE_PATCH, CURRENT, patch)


def test_copy_or_move_from_the_end_of_an_array_is_a_422_not_a_crash() -> None:
    """'/tags/-' names the position after the last element: nothing to copy, so a
    422, never jsonpointer's marker object measured as JSON (a TypeError, a 500)."""
    current = {"title": "t", "tags": ["a"], "body": None, "metadata": {}}
    for op in ("copy", "move"):
        with pytest.raises(ValidationFailed, match="does not exist"):
            apply_patch(JSON_PATCH, current, [{"op": op, "from": "/tags/-", "path": "/body"}])
