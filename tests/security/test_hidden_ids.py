"""A document the caller may not read (private without a grant, or of another
org) answers every request exactly as an id that never existed does (docs/
security.md, "Hidden documents and chosen ids"): the same status, body and
headers, on every verb and under every precondition.  The one answer that
cannot be the same is a PUT that would *create* at a never-used id: a taken id
is refused (409, or 412 under ``If-None-Match: *``) with nothing of the
document in it.

Through the Lambda handler, real PostgreSQL and Redis (tests/conftest.py).
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest

from tests.conftest import Invoker, make_token

pytestmark = pytest.mark.integration

MERGE = {"Content-Type": "application/merge-patch+json"}
ETAG = '"0123456789abcdef"'
# (method, path, body, headers): every route on one document, with and without
# its preconditions; none of them may tell a hidden document from a missing one
REQUESTS: list[tuple[str, str, Any, dict[str, str]]] = [
    ("GET", "/documents/{id}", None, {}),
    ("GET", "/documents/{id}", None, {"If-None-Match": ETAG}),
    ("GET", "/documents/{id}/versions", None, {}),
    ("GET", "/documents/{id}/versions/1", None, {}),
    ("GET", "/documents/{id}/content", None, {}),
    ("GET", "/documents/{id}/versions/1/content", None, {}),
    ("GET", "/documents/{id}/grants", None, {}),
    ("PUT", "/documents/{id}", {"title": "mine now"}, {"If-Match": "*"}),
    ("PUT", "/documents/{id}", {"title": "mine now"}, {"If-Match": ETAG}),
    ("PUT", "/documents/{id}", {"title": "x", "visibility": "org"}, {"If-Match": ETAG}),
    ("PUT", "/documents/{id}", {"title": ""}, {}),  # invalid: 422 alike
    ("PATCH", "/documents/{id}", {"title": "p"}, MERGE),
    ("PATCH", "/documents/{id}", {"title": "p"}, {**MERGE, "If-Match": ETAG}),
    ("POST", "/documents/{id}/changes", {"title": "p"}, {**MERGE, "If-Match": ETAG}),
    ("POST", "/documents/{id}/changes", {"title": "p"}, MERGE),
    ("DELETE", "/documents/{id}", None, {}),
    ("DELETE", "/documents/{id}", None, {"If-Match": ETAG}),
    ("POST", "/documents/{id}/restore", None, {}),
    ("POST", "/documents/{id}/versions/1/restore", None, {"If-Match": ETAG}),
    ("PUT", "/documents/{id}/grants/bob", {"role": "reader"}, {}),
    ("DELETE", "/documents/{id}/grants/bob", None, {}),
    ("PUT", "/documents/{id}/visibility", {"visibility": "org"}, {}),
    ("POST", "/documents/{id}/content", {"content_type": "text/plain"}, {}),
]
_VARYING = {"x-request-id", "ratelimit-remaining", "ratelimit-reset"}  # per request


def _id() -> str:
    return f"doc-{uuid.uuid4().hex}"  # every id of the test has this length


def _answer(r: Any, doc_id: str) -> tuple[int, Any, dict[str, Any]]:
    """The whole answer, with the id it names replaced by a placeholder."""
    body = json.loads(r.text.replace(doc_id, "{id}")) if r.text else None
    headers = {k: str(v).replace(doc_id, "{id}") for k, v in r.headers.items()}
    return r.status, body, {k: v for k, v in headers.items() if k not in _VARYING}


@pytest.fixture
def world(container: Any) -> dict[str, Any]:
    """A private document and another org's document, at ids of the same shape."""
    org, other = f"org-{uuid.uuid4().hex[:8]}", f"org-{uuid.uuid4().hex[:8]}"
    owner = Invoker(make_token(org=org, sub="olga", roles=("writer",)))
    private, foreign = _id(), _id()
    r = owner("PUT", f"/documents/{private}", {"title": "salary", "visibility": "private"})
    assert r.status == 201, r
    assert owner("GET", f"/documents/{private}").status == 200  # the cache holds it, ACL too
    stranger = Invoker(make_token(org=other, sub="will", roles=("writer",)))
    assert stranger("PUT", f"/documents/{foreign}", {"title": "theirs"}).status == 201
    return {
        "private": private,
        "foreign": foreign,
        "writer": Invoker(make_token(org=org, sub="will", roles=("writer",))),
        "reader": Invoker(make_token(org=org, sub="rita", roles=("reader",))),
    }


@pytest.mark.parametrize("role", ["writer", "reader"])
def test_every_verb_answers_a_hidden_document_as_a_never_used_id(
    world: dict[str, Any], role: str
) -> None:
    caller = world[role]
    for method, path, body, headers in REQUESTS:
        never = _id()
        missing = _answer(caller(method, path.format(id=never), body, headers=headers), never)
        assert missing[0] in (400, 403, 404, 412, 422), (method, path, headers, missing)
        for hidden in (world["private"], world["foreign"]):
            r = caller(method, path.format(id=hidden), body, headers=headers)
            assert _answer(r, hidden) == missing, (method, path, headers, hidden)


def test_a_put_that_would_create_says_only_that_the_id_is_taken(world: dict[str, Any]) -> None:
    writer, private = world["writer"], world["private"]
    for headers, status in (({}, 409), ({"If-None-Match": "*"}, 412)):
        r = writer("PUT", f"/documents/{private}", {"title": "mine now"}, headers=headers)
        assert r.status == status, r
        assert r.headers["content-type"] == "application/problem+json"
        assert "etag" not in r.headers and "location" not in r.headers
        text = r.text.lower()
        assert "salary" not in text and "olga" not in text and "version" not in text
        assert "private" not in text and "deleted" not in text
    # an id of another org is no id of this one: it is created, as a never-used id is
    foreign = world["foreign"]
    assert writer("PUT", f"/documents/{foreign}", {"title": "ours"}).status == 201
    assert writer("GET", f"/documents/{foreign}").json()["title"] == "ours"
