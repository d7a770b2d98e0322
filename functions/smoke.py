"""The authenticated smoke suite: one document's life, through the API's own handler.

The deploy hook runs it against the *new version* of ApiFunction before any traffic
reaches it, and against the alias once all traffic has moved; the synthetic canary
(functions/canary.py) runs it against the alias every minute.  Each step is an API
Gateway proxy event, invoked on the function directly, carrying the claims API
Gateway's authorizer would put in ``requestContext.authorizer`` (the app trusts them:
``DOCS_TRUST_AUTHORIZER_CLAIMS``, and checks their issuer and audience).  So no
token, no user and no password exists for it: the right to invoke the function
is the credential (docs/deploy.md, "Smoke tests").

Steps, in a dedicated org (``CANARY_ORG``, nobody else's data), as an admin:

create (POST /documents) → read an unknown id (a miss: 404) → read (200) → read
again (served from the cache: ``X-Cache: hit``, the same ETag) → patch with
If-Match (new ETag) → patch with the stale ETag (412) → search (200, the org's
hits only) → delete (204) → read (404) → restore (200) → read (200) → delete
again (the clean-up; the purge removes it after the retention window).

A failed step raises SmokeFailed naming it; the document is deleted in every case.
"""

from __future__ import annotations

import contextlib
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

CANARY_ORG = "docs-canary"
CANARY_USER = "docs-canary"
Invoke = Callable[[dict[str, Any]], dict[str, Any]]  # API Gateway event -> proxy response

# path templates as API Gateway names them (resourcePath), for the steps' paths
_RESOURCES = (
    ("/documents/{doc_id}/restore", 3, "restore"),
    ("/documents/{doc_id}", 2, None),
)


class SmokeFailed(Exception):
    """A step of the suite failed: ``step`` names it, the message says why."""

    def __init__(self, step: str, detail: str) -> None:
        super().__init__(f"{step}: {detail}")
        self.step = step


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: Any


@dataclass
class Caller:
    """Who the suite acts as: the claims an authorizer would have verified."""

    issuer: str
    audience: str
    org: str = CANARY_ORG
    sub: str = CANARY_USER
    roles: str = "[admin]"  # as the authorizer stringifies a list
    agent: str = "docs-smoke"
    steps: list[str] = field(default_factory=list)

    def claims(self) -> dict[str, Any]:
        return {
            "sub": self.sub,
            "org": self.org,
            "roles": self.roles,
            "iss": self.issuer,
            "aud": self.audience,
            "token_use": "id",
        }


def _resource(path: str) -> tuple[str, dict[str, str] | None]:
    parts = path.strip("/").split("/")
    for template, length, last in _RESOURCES:
        if len(parts) == length and parts[0] == "documents" and (last is None or parts[-1] == last):
            return template, {"doc_id": parts[1]}
    return path, None


def api_event(
    caller: Caller,
    method: str,
    path: str,
    body: Any = None,
    headers: dict[str, str] | None = None,
) -> dict[str, Any]:
    """The proxy event API Gateway sends for ``method path`` from an authorized caller."""
    resource, params = _resource(path)
    sent = {"User-Agent": caller.agent, **(headers or {})}
    if body is not None:
        sent.setdefault("Content-Type", "application/json")
    request_id = f"smoke-{uuid.uuid4()}"
    return {
        "resource": resource,
        "path": path,
        "httpMethod": method,
        "headers": sent,
        "multiValueHeaders": {k: [v] for k, v in sent.items()},
        "queryStringParameters": None,
        "multiValueQueryStringParameters": None,
        "pathParameters": params,
        "stageVariables": None,
        "body": None if body is None else json.dumps(body),
        "isBase64Encoded": False,
        "requestContext": {
            "resourcePath": resource,
            "httpMethod": method,
            "path": path,
            "requestId": request_id,
            "identity": {"sourceIp": "127.0.0.1", "userAgent": caller.agent},
            "authorizer": {"claims": caller.claims()},
        },
    }


def _call(
    invoke: Invoke,
    caller: Caller,
    step: str,
    method: str,
    path: str,
    *,
    expect: int,
    body: Any = None,
    headers: dict[str, str] | None = None,
) -> Answer:
    raw = invoke(api_event(caller, method, path, body, headers))
    status = raw.get("statusCode")
    given = {k.lower(): str(v) for k, v in (raw.get("headers") or {}).items()}
    text = raw.get("body") or ""
    try:
        parsed = json.loads(text) if text else None
    except ValueError:
        parsed = text
    if status != expect:
        raise SmokeFailed(step, f"{method} {path} answered {status}, not {expect}: {text[:300]}")
    caller.steps.append(step)
    return Answer(int(status), given, parsed)


def run_suite(invoke: Invoke, caller: Caller) -> list[str]:
    """Every step, in order; returns their names (SmokeFailed at the first that fails)."""
    run = uuid.uuid4().hex[:12]
    title = f"smoke {run}"
    doc_body = {"title": title, "body": {"run": run}, "tags": ["smoke"]}
    created = _call(invoke, caller, "create", "POST", "/documents", expect=201, body=doc_body)
    doc = created.body.get("id") if isinstance(created.body, dict) else None
    if not isinstance(doc, str):
        raise SmokeFailed("create", f"no document id in {created.body!r}")
    path = f"/documents/{doc}"
    try:
        _call(invoke, caller, "read-miss", "GET", f"/documents/smoke-missing-{run}", expect=404)
        first = _call(invoke, caller, "read", "GET", path, expect=200)
        second = _call(invoke, caller, "read-hit", "GET", path, expect=200)
        if second.headers.get("x-cache") != "hit":
            # a write fills the cache, so at the latest the second read is served from it
            raise SmokeFailed("read-hit", f"X-Cache {second.headers.get('x-cache')!r}, not 'hit'")
        etag = second.headers.get("etag") or ""
        if not etag or etag != first.headers.get("etag") or etag != created.headers.get("etag"):
            raise SmokeFailed("read-hit", "the reads' ETags differ from the create's")
        merge = {"If-Match": etag, "Content-Type": "application/merge-patch+json"}
        patched = _call(invoke, caller, "patch", "PATCH", path, expect=200,
                        body={"title": f"{title} patched"}, headers=merge)  # fmt: skip
        new_etag = patched.headers.get("etag")
        if not new_etag or new_etag == etag:
            raise SmokeFailed("patch", "the patch did not change the ETag")
        _call(invoke, caller, "patch-stale", "PATCH", path, expect=412,
              body={"title": "stale"}, headers=merge)  # fmt: skip
        found = _call(invoke, caller, "search", "POST", "/search", expect=200, body={"q": title})
        hits = found.body.get("hits") if isinstance(found.body, dict) else None
        if not isinstance(hits, list):
            raise SmokeFailed("search", f"no hits list in {found.body!r}")
        _call(invoke, caller, "delete", "DELETE", path, expect=204, headers={"If-Match": new_etag})
        _call(invoke, caller, "read-deleted", "GET", path, expect=404)
        _call(invoke, caller, "restore", "POST", f"{path}/restore", expect=200)
        _call(invoke, caller, "read-restored", "GET", path, expect=200)
    finally:
        # the clean-up: whatever failed, the document ends deleted (the purge removes it)
        with contextlib.suppress(Exception):  # the step that failed is what gets reported
            invoke(api_event(caller, "DELETE", path))
    caller.steps.append("clean-up")
    return list(caller.steps)
