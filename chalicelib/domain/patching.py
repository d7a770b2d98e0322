"""Applying client patches to a document's editable part.

RFC 6902 JSON Patch (via ``jsonpatch``, atomic: it works on a copy) and
RFC 7396 JSON Merge Patch (via ``json_merge_patch``).  Both address the
document resource; operations on read-only fields are refused with 422, a
failed ``test`` is 409, anything else that cannot apply is 422 — and in every
failure case nothing changes.
"""

from __future__ import annotations

import copy
from typing import Any

import json_merge_patch
import jsonpatch
import jsonpointer

from chalicelib.domain.errors import Conflict, ValidationFailed
from chalicelib.domain.model import (
    EDITABLE_FIELDS,
    READ_ONLY_FIELDS,
    DocumentIn,
    validate_editable,
)

JSON_PATCH = "application/json-patch+json"
MERGE_PATCH = "application/merge-patch+json"
PATCH_MEDIA_TYPES = (JSON_PATCH, MERGE_PATCH)


def _top_field(pointer: Any, where: str) -> str:
    if not isinstance(pointer, str):
        raise ValidationFailed(
            f"Each operation needs a string '{where}'.",
            errors=[{"loc": [where], "msg": "expected a JSON pointer", "type": "type_error"}],
        )
    try:
        parts = jsonpointer.JsonPointer(pointer).parts
    except jsonpointer.JsonPointerException as exc:
        raise ValidationFailed(f"Invalid JSON pointer {pointer!r}: {exc}") from None
    if not parts:
        raise ValidationFailed("Patching the whole document ('') is not allowed; name a field.")
    return parts[0]


def _check_field(name: str) -> None:
    if name in READ_ONLY_FIELDS:
        raise ValidationFailed(
            f"'{name}' is read-only.",
            errors=[{"loc": [name], "msg": "read-only field", "type": "read_only"}],
        )
    if name not in EDITABLE_FIELDS:
        raise ValidationFailed(
            f"'{name}' is not a field of a document.",
            errors=[{"loc": [name], "msg": "unknown field", "type": "unknown_field"}],
        )


def apply_json_patch(current: dict[str, Any], operations: Any) -> DocumentIn:
    if not isinstance(operations, list):
        raise ValidationFailed("A JSON Patch is a JSON array of operations.")
    for op in operations:
        if not isinstance(op, dict):
            raise ValidationFailed("Each JSON Patch operation must be an object.")
        _check_field(_top_field(op.get("path"), "path"))
        if op.get("op") in ("move", "copy"):
            _check_field(_top_field(op.get("from"), "from"))
    try:
        patch = jsonpatch.JsonPatch(operations)
        result = patch.apply(copy.deepcopy(current))
    except jsonpatch.JsonPatchTestFailed as exc:
        raise Conflict(f"A 'test' operation failed: {exc}") from None
    except (
        jsonpatch.JsonPatchException,
        jsonpointer.JsonPointerException,
        KeyError,
        IndexError,
        TypeError,
        ValueError,
    ) as exc:
        raise ValidationFailed(f"The patch cannot be applied: {exc}") from None
    return validate_editable(result)


def apply_merge_patch(current: dict[str, Any], patch: Any) -> DocumentIn:
    if not isinstance(patch, dict):
        raise ValidationFailed("A merge patch for a document must be a JSON object.")
    for name in patch:
        _check_field(name)
    result = json_merge_patch.merge(copy.deepcopy(current), patch)
    return validate_editable(result)


def apply_patch(media_type: str, current: dict[str, Any], patch: Any) -> DocumentIn:
    if media_type == JSON_PATCH:
        return apply_json_patch(current, patch)
    return apply_merge_patch(current, patch)
