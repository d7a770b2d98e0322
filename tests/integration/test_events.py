"""Every sample event in events/ runs through the Lambda handler with the status it promises.

The API events are also checked against the app's route table (one per route
and method, at least) and against the shape ``devtools.events`` builds
for the local server, so the samples, the local server and API Gateway agree.
"""

from __future__ import annotations

import json
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest

from devtools.events import LambdaContext, api_gateway_event
from tests.conftest import Invoker, make_token
from tests.polling import poll

pytestmark = pytest.mark.integration
EVENTS = Path(__file__).resolve().parents[2] / "events"
DOC = "event-doc"  # the document id the samples address
EXPECTED = {
    "api_post_documents": 201,
    "api_post_documents_batch": 200,
    "api_list_documents": 200,
    "api_get_document": 200,
    "api_get_document_authorizer": 200,
    "api_get_document_lambda_authorizer": 200,
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
    # document permissions
    "api_get_grants": 200,
    "api_put_grant": 200,
    "api_delete_grant": 204,
    "api_put_visibility": 200,
}
# need S3 (a private moto server): a document with uploaded, processed content
CONTENT_EXPECTED = {
    "api_post_content": 200,
    "api_get_content": 302,
    "api_head_content": 200,
    "api_get_version_content": 302,
    "api_head_version_content": 200,
}
# need OpenSearch (tests/conftest.py: OPENSEARCH_URL or the in-memory server)
SEARCH_EXPECTED = {"api_post_search": 200, "api_get_changes": 200}
# the audit trail, personal data and governance (an admin token; the export job
# "event-job" is seeded)
AUDIT_EXPECTED = {
    "api_get_audit": 200,
    "api_post_me_export": 202,
    "api_get_me_export": 200,
    "api_post_user_erasure": 200,
    "api_get_me_consents": 200,
    "api_put_me_consents": 200,
    "api_get_user_consents": 200,
    "api_get_me_notification_settings": 200,
    "api_put_me_notification_settings": 200,
    "api_get_access_review": 200,
    "api_post_access_review_attestation": 201,
    # signed webhooks (docs/webhooks.md): WEBHOOK and its dead delivery DELIVERY are seeded
    "api_post_webhook": 201,
    "api_get_webhooks": 200,
    "api_delete_webhook": 204,
    "api_post_webhook_rotate_secret": 200,
    "api_get_webhook_deliveries": 200,
    "api_post_webhook_replay": 202,
}
WEBHOOK = "01JEVENTWEBH00K00000000000"
DELIVERY = "msg_01JEVENTDE1VERY00000000000"
CONTENT_VERSION = "3"  # PUT (1), start upload (2), processed (3): the n in the samples


def _load(name: str) -> dict[str, Any]:
    event: dict[str, Any] = json.loads((EVENTS / f"{name}.json").read_text())
    return event


def _fill(name: str, token: str, etag: str | None) -> dict[str, Any]:
    text = (EVENTS / f"{name}.json").read_text()
    text = text.replace("{{token}}", token).replace('"{{etag}}"', json.dumps(etag or ""))
    event: dict[str, Any] = json.loads(text)
    return event


# ---------------------------------------------------------------- the samples
def test_every_api_event_is_covered() -> None:
    assert {p.stem for p in EVENTS.glob("api_*.json")} == set(EXPECTED) | set(
        CONTENT_EXPECTED
    ) | set(SEARCH_EXPECTED) | set(AUDIT_EXPECTED)


def test_every_route_has_a_sample_event() -> None:
    import app

    routes = {(path, method) for path, methods in app.app.routes.items() for method in methods}
    samples = {
        (e["resource"], e["httpMethod"])
        for e in map(_load, EXPECTED | CONTENT_EXPECTED | SEARCH_EXPECTED | AUDIT_EXPECTED)
    }
    assert samples == routes


@pytest.mark.parametrize(
    "name", sorted(EXPECTED | CONTENT_EXPECTED | SEARCH_EXPECTED | AUDIT_EXPECTED)
)
def test_event_has_the_shape_api_gateway_sends(name: str) -> None:
    """The same request built by the local server's event builder: same keys, same routing."""
    import app

    event = _load(name)
    query = event["queryStringParameters"]
    raw_path = event["path"] + (f"?{urlencode(query)}" if query else "")
    body = event["body"].encode() if event["body"] is not None else None
    built = api_gateway_event(
        tuple(app.app.routes), event["httpMethod"], raw_path, headers=event["headers"], body=body
    )
    assert built is not None, f"no route for {event['path']}"
    assert set(event) == set(built)
    assert set(built["requestContext"]) <= set(event["requestContext"])
    for key in ("resource", "path", "httpMethod", "pathParameters", "queryStringParameters"):
        assert event[key] == built[key], key
    assert event["multiValueQueryStringParameters"] == built["multiValueQueryStringParameters"]
    assert event["multiValueHeaders"] == {k: [v] for k, v in event["headers"].items()}
    context = event["requestContext"]
    assert context["resourcePath"] == event["resource"]
    assert context["httpMethod"] == event["httpMethod"]
    assert context["path"] == f"/{context['stage']}{event['path']}"
    assert event["isBase64Encoded"] is False
    if name not in ("api_get_health", "api_get_openapi", "api_get_document_authorizer",
                    "api_get_document_lambda_authorizer"):  # fmt: skip
        assert event["headers"]["Authorization"] == "Bearer {{token}}"


# -------------------------------------------------------- through the handler
@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_event(name: str, container: Any, invoke: Invoker) -> None:
    import app

    org = f"events-{name}"
    token = make_token(org=org, roles=("admin",))
    etag = None
    if name != "api_put_document":  # the others address an existing document
        r = invoke("PUT", f"/documents/{DOC}", {"title": "seed"}, token=token)
        assert r.status == 201
        etag = r.headers["etag"]
    if name == "api_restore_document":
        assert invoke("DELETE", f"/documents/{DOC}", token=token).status == 204
    if name in ("api_get_document_authorizer", "api_get_document_lambda_authorizer"):
        invoke("PUT", f"/documents/{DOC}", {"title": "seed"}, token=make_token(org="acme"))
        authorizer = _load(name)["requestContext"]["authorizer"]
        claims = authorizer.get("claims", authorizer)
        container.settings = container.settings.model_copy(
            update={  # the app pins the authorizer's issuer and audience (chalicelib/auth.py)
                "trust_authorizer_claims": True,
                "jwt_issuer": claims["iss"],
                "jwt_audience": claims["aud"],
            }
        )
    result = app.handler(_fill(name, token, etag), LambdaContext.new())
    assert result["statusCode"] == EXPECTED[name], result["body"]


@pytest.mark.parametrize("name", sorted(AUDIT_EXPECTED))
def test_audit_event(name: str, container: Any, invoke: Invoker) -> None:
    import app

    org = f"events-{name}"
    token = make_token(org=org, roles=("admin",))
    r = invoke("PUT", f"/documents/{DOC}", {"title": "seed"}, token=token)
    assert r.status == 201, r
    if name == "api_post_user_erasure":  # event-user owns a document
        user = make_token(org=org, sub="event-user", roles=("writer",))
        assert invoke("PUT", "/documents/theirs", {"title": "x"}, token=user).status == 201
    if name == "api_get_me_export":  # the token's subject requested it
        container.personal_data.jobs.create(org, "event-job", "alice", None)
    if "webhook" in name:
        _seed_webhook(container, org)
    result = app.handler(_fill(name, token, None), LambdaContext.new())
    assert result["statusCode"] == AUDIT_EXPECTED[name], result["body"]


def _seed_webhook(container: Any, org: str) -> None:
    from tests.conftest import admin_sql

    url = container.settings.database_url
    admin_sql(
        url,
        "INSERT INTO webhook_endpoints (org, id, url, events, secret_sealed) "
        "VALUES (%s, %s, 'https://hooks.example.com/docs', '{document.created}', 'v1.x')",
        org, WEBHOOK,
    )  # fmt: skip
    admin_sql(
        url,
        "INSERT INTO webhook_deliveries (org, id, endpoint_id, outbox_seq, event_type, doc_id, "
        "version, payload, status, attempts) VALUES (%s, %s, %s, 1, 'document.created', %s, 1, "
        "'{}', 'dead', 3)",
        org, DELIVERY, WEBHOOK, DOC,
    )  # fmt: skip


@pytest.fixture
def content_container(settings: Any, moto_endpoint: str) -> Iterator[Any]:
    from chalicelib import bootstrap
    from devtools.s3_stack import ensure_resources

    suffix = uuid.uuid4().hex[:10]
    bucket = f"docs-ev-{suffix}"
    ensure_resources(moto_endpoint, bucket, queue=f"docs-ev-{suffix}", visibility_timeout_s=0)
    built = bootstrap.build(
        settings.model_copy(update={"aws_endpoint_url": moto_endpoint, "content_bucket": bucket})
    )
    bootstrap.set_container(built)
    yield built
    bootstrap.set_container(None)
    built.close()


def _upload_and_process(api: Invoker, org: str, bucket: str) -> None:
    """Start an upload, PUT the bytes to the presigned URL, run the S3 processor on
    the sample ObjectCreated event (rewritten to this object), as Lambda would."""
    from functions.process_upload import handler

    r = api("POST", f"/documents/{DOC}/content", {"content_type": "text/plain"})
    assert r.status == 200, r
    ticket = r.json()
    headers = {k: v for k, v in ticket["headers"].items() if k.lower() != "content-length"}
    put = urllib.request.Request(ticket["upload_url"], data=b"hello", method="PUT", headers=headers)
    with urllib.request.urlopen(put, timeout=30) as resp:
        assert resp.status == 200
        version_id = resp.headers.get("x-amz-version-id")
    event = json.loads((EVENTS / "s3_object_created_put.json").read_text())
    record = event["Records"][0]["s3"]
    record["bucket"]["name"] = bucket
    record["object"].update(
        key=f"content/{org}/{DOC}/{ticket['upload_id']}", size=5, versionId=version_id
    )
    outcome = handler(event, LambdaContext.new())
    assert len(outcome["outcomes"]) == 1, outcome


@pytest.mark.parametrize("name", sorted(CONTENT_EXPECTED))
def test_content_event(name: str, content_container: Any) -> None:
    import app

    org = f"events-{name}"
    token = make_token(org=org, roles=("writer",))
    api = Invoker(token)
    r = api("PUT", f"/documents/{DOC}", {"title": "seed"})
    assert r.status == 201, r
    if name != "api_post_content":
        _upload_and_process(api, org, content_container.settings.content_bucket)
        doc = api("GET", f"/documents/{DOC}").json()
        assert doc["content"]["status"] == "ready", doc
        assert str(doc["version"]) == CONTENT_VERSION
    etag = api("GET", f"/documents/{DOC}").headers["etag"]
    result = app.handler(_fill(name, token, etag), LambdaContext.new())
    assert result["statusCode"] == CONTENT_EXPECTED[name], result["body"]
    if CONTENT_EXPECTED[name] == 302:
        assert result["headers"]["Location"].startswith(content_container.settings.aws_endpoint_url)


@pytest.mark.parametrize("name", sorted(SEARCH_EXPECTED))
def test_search_event(name: str, search_container: Any) -> None:
    import app

    org = f"events-{name}"
    token = make_token(org=org, roles=("reader", "writer"))
    r = Invoker(token)("PUT", f"/documents/{DOC}", {"title": "The quarterly report"})
    assert r.status == 201, r
    search_container.search_sync.drain()
    search_container.search_index.refresh()

    def read() -> list[dict[str, Any]]:
        result = app.handler(_fill(name, token, None), LambdaContext.new())
        assert result["statusCode"] == SEARCH_EXPECTED[name], result["body"]
        body = json.loads(result["body"])
        found: list[dict[str, Any]] = body["hits"] if name == "api_post_search" else body["changes"]
        return found

    # the feed holds rows back while an older transaction of the (shared)
    # PostgreSQL cluster is open: read it again for a while
    found = poll(read)
    assert [item["id"] for item in found] == [DOC]


# ------------------------------------------- the API's Lambda authorizer (AWS)
def _trusting(container: Any) -> None:
    """The app as deployed: it trusts the authorizer's context, for this issuer."""
    claims = _load("api_get_document_authorizer")["requestContext"]["authorizer"]["claims"]
    container.settings = container.settings.model_copy(
        update={
            "trust_authorizer_claims": True,
            "jwt_issuer": claims["iss"],
            "jwt_audience": claims["aud"],
        }
    )


def test_the_lambda_authorizers_context_gives_the_principal_the_claims_gave(
    container: Any,
) -> None:
    """The same caller through the old Cognito claims and the Lambda authorizer's flat
    context: the same Principal, and the same answer through ``app.handler``."""
    import app
    from chalicelib.api.auth import authenticate

    user = make_token(org="acme", roles=("writer",))
    seeded = app.handler(_fill("api_put_document", user, None), LambdaContext.new())
    assert seeded["statusCode"] in (201, 412), seeded["body"]  # 412: seeded before
    _trusting(container)
    old = _load("api_get_document_authorizer")["requestContext"]
    new = _load("api_get_document_lambda_authorizer")["requestContext"]
    settings = container.settings
    assert authenticate({}, new, settings, "r") == authenticate({}, old, settings, "r")
    answers = [
        app.handler(_fill(name, "", None), LambdaContext.new())
        for name in ("api_get_document_authorizer", "api_get_document_lambda_authorizer")
    ]
    assert [a["statusCode"] for a in answers] == [200, 200]
    assert json.loads(answers[0]["body"]) == json.loads(answers[1]["body"])


def test_an_expired_token_cached_by_the_gateway_is_refused_by_the_app(container: Any) -> None:
    """API Gateway may replay a cached Allow after the token's exp: the app says 401."""
    import time

    import app

    _trusting(container)
    event = _fill("api_get_document_lambda_authorizer", "", None)
    event["requestContext"]["authorizer"]["exp"] = str(int(time.time()) - 3600)
    result = app.handler(event, LambdaContext.new())
    assert result["statusCode"] == 401, result["body"]
    assert "expired" in json.loads(result["body"])["detail"]


def test_the_authorizer_event_is_answered_with_the_apps_principal(
    container: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """events/authorizer_token.json through functions.authorizer.handler, with a dev
    token; its context, handed to the app, is the token's own principal."""
    from chalicelib.api.auth import authenticate, principal_from_context
    from functions import authorizer

    monkeypatch.setattr(authorizer, "get_settings", lambda: container.settings)
    token = make_token(org="acme", roles=("reader", "admin"))
    answer = authorizer.handler(_fill("authorizer_token", token, None), LambdaContext.new())  # type: ignore[arg-type]
    (statement,) = answer["policyDocument"]["Statement"]
    assert statement["Effect"] == "Allow" and statement["Resource"].endswith("/api/*/*")
    via_context = principal_from_context(answer["context"], container.settings, "r")
    direct = authenticate({"authorization": f"Bearer {token}"}, {}, container.settings, "r")
    assert via_context == direct
    with pytest.raises(Exception, match=r"^Unauthorized$"):
        authorizer.handler(_fill("authorizer_token", "x.y.z", None), LambdaContext.new())  # type: ignore[arg-type]
