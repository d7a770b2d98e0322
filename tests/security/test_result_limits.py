"""Patch amplification: limits hold for what a write *produces*, and the work to
get there is bounded.  Every case must store nothing (the document keeps its
version) and answer problem+json, never a 500."""

from __future__ import annotations

import json
from typing import Any

import pytest

from chalicelib.domain.errors import PayloadTooLarge, ValidationFailed
from chalicelib.domain.model import Limits, json_size
from chalicelib.domain.patching import JSON_PATCH, MERGE_PATCH, apply_json_patch
from chalicelib.domain.principal import Principal
from chalicelib.service_layer.documents import DocumentService
from chalicelib.settings_groups import DocumentSettings
from tests.unit.fakes import FakeCache, FakeUnitOfWork, coherence

pytestmark = pytest.mark.integration

BODY = {"text": "x" * 6000, "items": list(range(200))}  # ~7 KB


def _create(invoke: Any, body: Any = BODY) -> dict[str, Any]:
    r = invoke("POST", "/documents", {"title": "amplify me", "body": body})
    assert r.status == 201, r
    doc: dict[str, Any] = r.json()
    return doc


def _unchanged(invoke: Any, doc: dict[str, Any]) -> None:
    r = invoke("GET", f"/documents/{doc['id']}")
    assert r.status == 200 and r.json()["version"] == doc["version"], r
    versions = invoke("GET", f"/documents/{doc['id']}/versions").json()["items"]
    assert [v["version"] for v in versions] == [doc["version"]]


def _problem(r: Any, status: int) -> dict[str, Any]:
    assert r.status == status, r
    assert r.headers["content-type"] == "application/problem+json"
    problem: dict[str, Any] = r.json()
    assert problem["status"] == status
    return problem


def _send_patch(invoke: Any, doc: dict[str, Any], route: str, ops: Any, mtype: str) -> Any:
    method, path = ("PATCH", f"/documents/{doc['id']}") if route == "patch" else (
        "POST", f"/documents/{doc['id']}/changes"
    )  # fmt: skip
    return invoke(method, path, ops, headers={"Content-Type": mtype, "If-Match": doc["etag"]})


def _doubling_copies(n: int) -> list[dict[str, str]]:
    return [{"op": "copy", "from": "/body", "path": f"/body/k{i}"} for i in range(n)]


@pytest.mark.parametrize("route", ["patch", "changes"])
def test_copy_amplification_is_a_413_and_stores_nothing(invoke: Any, route: str) -> None:
    doc = _create(invoke)
    ops = _doubling_copies(17)  # under 1 KB of request; 2^17 x 7 KB if applied
    assert len(json.dumps(ops)) < 1100
    problem = _problem(_send_patch(invoke, doc, route, ops, JSON_PATCH), 413)
    assert "content" in problem["detail"]  # points to the upload path
    _unchanged(invoke, doc)


@pytest.mark.parametrize("route", ["patch", "changes"])
def test_copy_nesting_past_the_depth_limit_is_a_422(invoke: Any, route: str) -> None:
    doc = _create(invoke, body={"a": 1})
    # each op nests the body one level deeper inside itself (linear growth in size)
    ops = [{"op": "copy", "from": "/body", "path": "/body/k"}] * 40
    problem = _problem(_send_patch(invoke, doc, route, ops, JSON_PATCH), 422)
    assert "deeper than 32" in problem["detail"]
    _unchanged(invoke, doc)


def test_many_nested_adds_are_refused_not_a_recursion_error(invoke: Any) -> None:
    doc = _create(invoke, body={})
    ops, path = [], "/body"
    for _ in range(900):
        path += "/a"
        ops.append({"op": "add", "path": path, "value": {}})
    problem = _problem(_send_patch(invoke, doc, "patch", ops, JSON_PATCH), 422)
    assert "deeper than 32" in problem["detail"]
    _unchanged(invoke, doc)


def test_more_operations_than_the_cap_are_a_422(invoke: Any) -> None:
    doc = _create(invoke, body={})
    ops = [{"op": "test", "path": "/title", "value": "amplify me"}] * 1001
    problem = _problem(_send_patch(invoke, doc, "changes", ops, JSON_PATCH), 422)
    assert "at most 1000 operations" in problem["detail"]
    ok = _send_patch(invoke, doc, "changes", ops[:1000], JSON_PATCH)
    assert ok.status == 200, ok


@pytest.mark.parametrize("route", ["patch", "changes"])
def test_merge_patch_result_over_the_size_limit_is_a_413(invoke: Any, route: str) -> None:
    doc = _create(invoke, body="b" * 600_000)
    patch = {"metadata": {"more": "m" * 600_000}}  # each request is under 1 MiB
    _problem(_send_patch(invoke, doc, route, patch, MERGE_PATCH), 413)
    _unchanged(invoke, doc)


def test_a_patch_that_shrinks_back_under_the_limit_is_fine(invoke: Any) -> None:
    doc = _create(invoke, body={"big": "b" * 700_000})
    ops = [
        {"op": "copy", "from": "/body/big", "path": "/body/twin"},  # 1.4 MB for a moment
        {"op": "remove", "path": "/body/big"},
    ]
    r = _send_patch(invoke, doc, "patch", ops, JSON_PATCH)
    assert r.status == 200 and set(r.json()["body"]) == {"twin"}, r


# ---------------------------------------------------------------- unit level
WRITER = Principal("alice", "acme", frozenset({"writer"}))
SMALL = Limits(max_bytes=4000, max_depth=6, max_patch_ops=50)


def test_the_working_copy_never_grows_past_twice_the_limit() -> None:
    sizes: list[int] = []
    current = {"title": "t", "body": {"x": "y" * 1000}, "tags": [], "metadata": {}}
    ops = _doubling_copies(30)
    original = apply_json_patch.__globals__["jsonpatch"].JsonPatch.apply

    def spy(self: Any, obj: Any, in_place: bool = False) -> Any:
        result = original(self, obj, in_place)
        sizes.append(json_size(result))
        return result

    apply_json_patch.__globals__["jsonpatch"].JsonPatch.apply = spy
    try:
        with pytest.raises(PayloadTooLarge):
            apply_json_patch(current, ops, SMALL)
    finally:
        apply_json_patch.__globals__["jsonpatch"].JsonPatch.apply = original
    assert sizes and max(sizes) <= 2 * SMALL.max_bytes


def test_the_bytes_a_patch_may_copy_in_all_are_bounded() -> None:
    current = {"title": "t", "body": {"big": "b" * 1500}, "tags": [], "metadata": {}}
    churn = [{"op": "copy", "from": "/body/big", "path": "/body/twin"},
             {"op": "remove", "path": "/body/twin"}] * 25  # fmt: skip
    with pytest.raises(ValidationFailed, match="16 times"):
        apply_json_patch(current, churn, SMALL)  # 50 ops x 1.5 KB > 16 x 4000 bytes
    assert apply_json_patch(current, churn[:20], SMALL).body == {"big": "b" * 1500}


def test_version_restore_and_batch_items_are_held_to_the_limits() -> None:
    uow, cache = FakeUnitOfWork(), FakeCache()
    roomy = DocumentService(uow, coherence(uow, cache), page_secret="s")
    strict = DocumentService(
        uow, coherence(uow, cache), page_secret="s", settings=DocumentSettings(limits=SMALL)
    )
    doc = roomy.create(WRITER, {"title": "v1", "body": "z" * 5000})
    small = roomy.put(WRITER, doc.id, {"title": "v2"}, if_match=doc.etag, if_none_match=None)[0]
    with pytest.raises(PayloadTooLarge):
        strict.restore_version(WRITER, doc.id, 1, if_match=small.etag)
    deep: Any = "leaf"
    for _ in range(8):
        deep = {"d": deep}
    results = strict.create_many(WRITER, [{"title": "ok"}, {"title": "big", "body": "z" * 5000},
                                          {"title": "deep", "body": deep}])  # fmt: skip
    assert [type(r.error) for r in results] == [type(None), PayloadTooLarge, ValidationFailed]
    with pytest.raises(ValidationFailed):
        strict.create(WRITER, {"title": "deep", "body": deep})
