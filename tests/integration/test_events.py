"""Every sample event in events/ runs through the Lambda handler with the status it promises."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from chalicelib.local.events import LambdaContext
from tests.conftest import make_token

pytestmark = pytest.mark.integration
EVENTS = Path(__file__).resolve().parents[2] / "events"
EXPECTED = {
    "api_post_documents": 201,
    "api_post_documents_batch": 200,
    "api_list_documents": 200,
    "api_get_document": 200,
    "api_get_document_authorizer": 200,
    "api_put_document": 201,
    "api_patch_document": 200,
    "api_post_changes": 200,
    "api_delete_document": 204,
    "api_restore_document": 200,
    "api_list_versions": 200,
    "api_get_version": 200,
    "api_restore_version": 200,
    "api_get_health": 200,
    "api_get_openapi": 200,
}


def test_every_api_event_is_covered() -> None:
    assert {p.stem for p in EVENTS.glob("api_*.json")} == set(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_event(name: str, container, invoke) -> None:
    import app

    org = f"events-{name}"
    token = make_token(org=org, roles=("admin",))
    etag = None
    if name != "api_put_document":  # the others address an existing document
        r = invoke("PUT", "/documents/event-doc", {"title": "seed"}, token=token)
        assert r.status == 201
        etag = r.headers["etag"]
    if name == "api_restore_document":
        assert invoke("DELETE", "/documents/event-doc", token=token).status == 204
    if name == "api_get_document_authorizer":
        org = "acme"
        invoke("PUT", "/documents/event-doc", {"title": "seed"}, token=make_token(org="acme"))
        container.settings = container.settings.model_copy(update={"trust_authorizer_claims": True})
    text = (EVENTS / f"{name}.json").read_text()
    text = text.replace("{{token}}", token).replace('"{{etag}}"', json.dumps(etag or ""))
    result = app.handler(json.loads(text), LambdaContext.new())
    assert result["statusCode"] == EXPECTED[name], result["body"]
