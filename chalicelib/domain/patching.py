"""Applying client patches to a document's editable part.

RFC 6902 JSON Patch (via ``jsonpatch``, atomic: it works on a copy) and
RFC 7396 JSON Merge Patch (via ``json_merge_patch``).  Both address the
document resource; operations on read-only fields are refused with 422, a
failed ``test`` is 409, anything else that cannot apply is 422 — and in every
failure case nothing changes.

A small patch must not build a huge document: ``copy`` ops can double the
document with each operation (17 ops of a few bytes each would otherwise
build megabytes, 27 gigabytes).  So the work is bounded as well as the result:

* at most ``Limits.max_patch_ops`` operations per patch (422 above);
* ops are applied one at a time, each one's depth checked *before* it is
  applied (the path's depth plus the depth of the value it brings), and a
  running estimate of the size kept (it errs upwards only); an op that would
  take the estimate past twice the limit has the document measured exactly,
  and is refused (413) before it copies anything if it would still pass it.
  An intermediate state may pass the limit (copy, then remove the original),
  but the working copy never holds more than twice the limit;
* the bytes all ops copy, replace or remove add up to at most 16 times the
  limit (422 above), so the CPU a patch costs is bounded too;
* the finished result is checked again (``validate_editable``).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import json_merge_patch
import jsonpatch
import jsonpointer

from chalicelib.domain.errors import Conflict, ValidationFailed
from chalicelib.domain.model import (
    DEFAULT_LIMITS,
    EDITABLE_FIELDS,
    READ_ONLY_FIELDS,
    DocumentIn,
    Limits,
    json_depth,
    json_size,
    too_deep,
    too_large,
    validate_editable,
)

JSON_PATCH = "application/json-patch+json"
MERGE_PATCH = "application/merge-patch+json"
PATCH_MEDIA_TYPES = (JSON_PATCH, MERGE_PATCH)
_MISSING = object()
# how far past the size limit a patch may go on its way (copy, then remove the
# original); the result is held to the limit itself
_SCRATCH = 2
# bytes one patch may copy, replace or remove in all, in document limits: bounds
# the CPU a small patch can cost (1000 ops re-copying a large value)
_WORK = 16


def _pointer(pointer: Any, where: str) -> list[str]:
    if not isinstance(pointer, str):
        raise ValidationFailed(
            f"Each operation needs a string '{where}'.",
            errors=[{"loc": [where], "msg": "expected a JSON pointer", "type": "type_error"}],
        )
    try:
        parts: list[str] = jsonpointer.JsonPointer(pointer).parts
    except jsonpointer.JsonPointerException as exc:
        raise ValidationFailed(f"Invalid JSON pointer {pointer!r}: {exc}") from None
    if not parts:
        raise ValidationFailed("Patching the whole document ('') is not allowed; name a field.")
    _check_field(parts[0])
    return parts


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


def _resolve(doc: Any, parts: list[str]) -> Any:
    """The value at ``parts`` in ``doc``, or ``_MISSING``."""
    try:
        found = jsonpointer.JsonPointer.from_parts(parts).resolve(doc)
    except (jsonpointer.JsonPointerException, KeyError, IndexError, TypeError):
        return _MISSING
    # "-" names the position after an array's last element: nothing is there (a copy
    # or move *from* it would otherwise copy jsonpointer's marker object)
    return _MISSING if isinstance(found, jsonpointer.EndOfList) else found


def _sized(value: Any) -> int:
    return 0 if value is _MISSING else json_size(value)


@dataclass(frozen=True)
class _Step:
    """One operation with its pointers parsed (and checked) once."""

    op: dict[str, Any]
    path: list[str]
    source: list[str] | None  # ``from`` of a copy or move


def _plan(operations: Any, limits: Limits) -> list[_Step]:
    """Each operation with its parsed pointers, after the checks that need no document."""
    if not isinstance(operations, list):
        raise ValidationFailed("A JSON Patch is a JSON array of operations.")
    if len(operations) > limits.max_patch_ops:
        raise ValidationFailed(
            f"A JSON Patch may have at most {limits.max_patch_ops} operations; "
            f"this one has {len(operations)}. Split it, or send the document with PUT."
        )
    plan = []
    for op in operations:
        if not isinstance(op, dict):
            raise ValidationFailed("Each JSON Patch operation must be an object.")
        path = _pointer(op.get("path"), "path")
        source = _pointer(op.get("from"), "from") if op.get("op") in ("move", "copy") else None
        plan.append(_Step(op, path, source))
    return plan


def _growth(doc: Any, step: _Step, limits: Limits) -> tuple[int, int]:
    """Bytes ``op`` adds to ``doc`` (an estimate that errs upwards) and bytes it
    touches (copies, measures), after refusing an op that would nest the document
    too deep -- all before the op runs."""
    op, path, kind = step.op, step.path, step.op.get("op")
    member = len(path[-1].encode()) + 4  # "name": and a comma (array items: less)
    if kind == "remove":
        gone = _sized(_resolve(doc, path))
        return -gone, gone
    if kind not in ("add", "replace", "copy", "move"):
        return 0, 0  # test
    source = step.source
    value = _resolve(doc, source) if source is not None else op.get("value", _MISSING)
    if value is _MISSING:
        return 0, 0  # the op itself will fail
    if len(path) + json_depth(value, limits.max_depth) > limits.max_depth:
        raise too_deep(limits)
    if kind == "move":
        return member, 0
    size = _sized(value)
    if kind == "replace":
        old = _sized(_resolve(doc, path))
        return size - old, size + old
    return size + member, size


def apply_json_patch(
    current: dict[str, Any], operations: Any, limits: Limits = DEFAULT_LIMITS
) -> DocumentIn:
    plan = _plan(operations, limits)
    doc = copy.deepcopy(current)
    size = json_size(doc)
    cap, budget = _SCRATCH * limits.max_bytes, _WORK * limits.max_bytes
    for index, step in enumerate(plan):
        grow, touched = _growth(doc, step, limits)
        budget -= touched
        if budget < 0:
            raise ValidationFailed(
                f"This patch copies, replaces or removes more than {_WORK} times the "
                f"{limits.max_bytes}-byte document limit in all; send the document with PUT."
            )
        if size + grow > cap:
            size = json_size(doc)  # the estimate only ever errs upwards: measure
            if size + grow > cap:  # refused before the op copies anything
                raise too_large(limits)
        doc = _apply_one(doc, index, step.op)
        size += grow
    return validate_editable(doc, limits)


def _apply_one(doc: Any, index: int, op: dict[str, Any]) -> Any:
    """One operation, in place; failures in our own words (the libraries' messages
    quote Python types and whole document values)."""
    where = f"Operation {index} ({op.get('op')!s:.20} at {op.get('path')!s:.200})"
    try:
        return jsonpatch.JsonPatch([op]).apply(doc, in_place=True)
    except jsonpatch.JsonPatchTestFailed:
        raise Conflict(f"{where} failed: the value there differs from the tested one.") from None
    except jsonpatch.InvalidJsonPatch as exc:  # about the op's own shape, never the document
        raise ValidationFailed(f"{where} is malformed: {exc}.") from None
    except (jsonpatch.JsonPatchConflict, jsonpointer.JsonPointerException, KeyError, IndexError):
        raise ValidationFailed(
            f"{where} cannot be applied: its path (or 'from') does not exist in the document, "
            "or names an array position that is out of range or not a number."
        ) from None
    except (jsonpatch.JsonPatchException, TypeError, ValueError):
        raise ValidationFailed(f"{where} cannot be applied to the document.") from None


def apply_merge_patch(
    current: dict[str, Any], patch: Any, limits: Limits = DEFAULT_LIMITS
) -> DocumentIn:
    """A merge patch is a JSON object no deeper than a request may be, so merging it
    does at most (current + patch) work; the result is then held to the limits."""
    if not isinstance(patch, dict):
        raise ValidationFailed("A merge patch for a document must be a JSON object.")
    for name in patch:
        _check_field(name)
    result = json_merge_patch.merge(copy.deepcopy(current), patch)
    return validate_editable(result, limits)


def apply_patch(
    media_type: str, current: dict[str, Any], patch: Any, limits: Limits = DEFAULT_LIMITS
) -> DocumentIn:
    if media_type == JSON_PATCH:
        return apply_json_patch(current, patch, limits)
    return apply_merge_patch(current, patch, limits)
