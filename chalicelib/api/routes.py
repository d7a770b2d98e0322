"""The route table: every HTTP route of the API, declared once.

A ``Route`` names its method, path and view, and its contract: summary,
request body, success status and body, the problem statuses it answers, and
whether it needs a token.  Three things are made from ``ROUTES`` and nothing
else:

- the Chalice routes (``register``, called by ``app.py``): each path and
  method bound to its view, wrapped as authenticated (``endpoint``) or public;
- the served OpenAPI document (``openapi.py``, built on the first
  ``GET /openapi.json``);
- the API Gateway paths in ``template.yaml`` (``python -m devtools.gen_api``
  writes them between the template's generated-block markers; a unit test
  fails when the checked-in block is stale).

Request and response bodies are named by their component schema (the pydantic
models of ``openapi.py``, imported only when the document is asked for, so
this module costs a cold start nothing of them).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from typing import Any

from chalice.app import Chalice, Response

from chalicelib.api import (
    access_review,
    audit,
    consents,
    content,
    documents,
    grants,
    notifications,
    ops,
    personal_data,
    search,
    webhooks,
)
from chalicelib.api import parameters as p
from chalicelib.api.endpoint import ANY, endpoint, public
from chalicelib.api.http import json_response
from chalicelib.api.route import Route


@cache
def _openapi_document() -> dict[str, Any]:
    # imported here: its pydantic models cost every cold start ~10-25 ms of import
    # time for a route that tools call now and then (docs/benchmarks.md, cold import)
    from chalicelib.api.openapi import openapi_document

    return openapi_document(ROUTES)


def openapi() -> Response:
    """``GET /openapi.json``: the OpenAPI document of ``ROUTES``, built once per process."""
    return json_response(_openapi_document(), headers={"Cache-Control": "public, max-age=300"})


ROUTES: tuple[Route, ...] = (
    # -- documents and their versions (documents.py)
    Route(
        "POST",
        "/documents",
        documents.create_document,
        "Create a document",
        ok=201,
        response="Document",
        body="DocumentIn",
        errors=p.WRITE_ERRORS,
    ),
    Route(
        "POST",
        "/documents:batch",
        documents.create_documents_batch,
        "Create up to 100 documents (each reported separately)",
        response="BatchResult",
        body="BatchIn",
        errors=p.WRITE_ERRORS,
        also=((207, "Partly created"),),
    ),
    Route(
        "GET",
        "/documents",
        documents.list_documents,
        "List documents, newest first",
        response="DocumentPage",
        parameters=(*p.PAGE, p.TAG),
        errors=(400, 401, 403),
    ),
    Route(
        "GET",
        "/documents/{doc_id}",
        documents.get_document,
        "Read a document",
        response="Document",
        parameters=(p.DOC_ID, p.IF_NONE_MATCH),
        errors=(401, 403, 404),
        also=((304, "Not modified: If-None-Match matched the current ETag (no body)"),),
    ),
    Route(
        "PUT",
        "/documents/{doc_id}",
        documents.put_document,
        "Create or replace a document",
        response="Document",
        parameters=(p.DOC_ID, p.IF_MATCH, p.IF_NONE_MATCH),
        body="DocumentIn",
        errors=(400, 401, 403, 409, 412, 413, 415, 422, 428),
        also=((201, "Created: there was no document with this id (Location, ETag)"),),
        description="An id taken by a document the caller may not read answers as a "
        "never-used id under If-Match (412); a create there is refused as for any taken "
        "id (409, or 412 under If-None-Match: *) with nothing of the document "
        "(docs/security.md, 'Hidden documents and chosen ids').",
    ),
    Route(
        "PATCH",
        "/documents/{doc_id}",
        documents.patch_document,
        "Apply a JSON Patch or merge patch",
        response="Document",
        parameters=(p.DOC_ID, p.IF_MATCH_REQUIRED),
        body=p.PATCH_BODY,
        errors=p.PATCH_ERRORS,
    ),
    Route(
        "DELETE",
        "/documents/{doc_id}",
        documents.delete_document,
        "Soft-delete a document",
        ok=204,
        parameters=(p.DOC_ID, p.IF_MATCH),
        errors=(400, 401, 403, 404, 412),
    ),
    Route(
        "POST",
        "/documents/{doc_id}/changes",
        documents.post_changes,
        "Apply a JSON Patch or merge patch",
        response="Document",
        parameters=(p.DOC_ID, p.IF_MATCH_REQUIRED),
        body=p.PATCH_BODY,
        errors=p.PATCH_ERRORS,
    ),
    Route(
        "POST",
        "/documents/{doc_id}/restore",
        documents.restore_document,
        "Undo a soft delete (admin)",
        response="Document",
        parameters=(p.DOC_ID,),
        errors=(401, 403, 404, 409, 410),
    ),
    Route(
        "GET",
        "/documents/{doc_id}/versions",
        documents.list_versions,
        "List versions, newest first",
        response="VersionPage",
        parameters=(p.DOC_ID, *p.PAGE),
        errors=(400, 401, 403, 404),
    ),
    Route(
        "GET",
        "/documents/{doc_id}/versions/{n}",
        documents.get_version,
        "Read one version",
        response="VersionOut",
        parameters=(p.DOC_ID, p.VERSION_N),
        errors=(400, 401, 403, 404),
    ),
    Route(
        "POST",
        "/documents/{doc_id}/versions/{n}/restore",
        documents.restore_version,
        "Make version n current",
        response="Document",
        parameters=(p.DOC_ID, p.VERSION_N, p.IF_MATCH_REQUIRED),
        errors=(400, 401, 403, 404, 412, 413, 422, 428),
    ),
    # -- large content (content.py)
    Route(
        "POST",
        "/documents/{doc_id}/content",
        content.start_content_upload,
        "Start a large-content upload (presigned S3 PUT)",
        response="UploadTicket",
        parameters=(p.DOC_ID, p.IF_MATCH),
        body="UploadIn",
        errors=(400, 401, 403, 404, 412, 413, 415, 422),
    ),
    Route(
        "GET",
        "/documents/{doc_id}/content",
        content.get_content,
        "Download the content: 302 to a presigned S3 GET",
        ok=302,
        parameters=(p.DOC_ID,),
        errors=(401, 403, 404, 409),
    ),
    Route(
        "HEAD",
        "/documents/{doc_id}/content",
        content.get_content,
        "Size and SHA-256 of the content (X-Content-*)",
        parameters=(p.DOC_ID,),
        errors=(401, 403, 404, 409),
    ),
    Route(
        "GET",
        "/documents/{doc_id}/versions/{n}/content",
        content.get_version_content,
        "Download one version's content (302)",
        ok=302,
        parameters=(p.DOC_ID, p.VERSION_N),
        errors=(400, 401, 403, 404, 409),
    ),
    Route(
        "HEAD",
        "/documents/{doc_id}/versions/{n}/content",
        content.get_version_content,
        "Size and SHA-256 of a version's content",
        parameters=(p.DOC_ID, p.VERSION_N),
        errors=(400, 401, 403, 404, 409),
    ),
    # -- search and the changes feed (search.py)
    Route(
        "POST",
        "/search",
        search.search,
        "Full-text search in the caller's org",
        response="SearchResult",
        body="SearchRequest",
        errors=p.WRITE_ERRORS,
    ),
    Route(
        "GET",
        "/changes",
        search.changes,
        "Changes feed (resumable cursor, optional long-poll)",
        response="ChangesPage",
        parameters=(*p.FEED_QUERY, p.LAST_EVENT_ID),
        errors=(400, 401, 403, 410),
        description=p.EVENT_STREAM_DESCRIPTION,
        media=(("text/event-stream", p.EVENT_STREAM),),
    ),
    # -- for operators and tools, without a token (ops.py; the OpenAPI document: above)
    Route(
        "GET",
        "/health",
        ops.health,
        "Liveness and dependencies",
        response="Health",
        errors=(503,),
        public=True,
    ),
    Route("GET", "/openapi.json", openapi, "This document", public=True),
    # -- document permissions: the owner or an admin; a change is a new version (grants.py)
    Route(
        "GET",
        "/documents/{doc_id}/grants",
        grants.list_grants,
        "List a document's grants (owner or admin)",
        response="GrantList",
        parameters=(p.DOC_ID,),
        errors=(401, 403, 404),
    ),
    Route(
        "PUT",
        "/documents/{doc_id}/grants/{user}",
        grants.put_grant,
        "Add or change a user's grant (owner or admin; same org only)",
        response="GrantOut",
        parameters=(p.DOC_ID, p.GRANTEE),
        body="GrantIn",
        errors=(400, 401, 403, 404, 409, 415, 422),
    ),
    Route(
        "DELETE",
        "/documents/{doc_id}/grants/{user}",
        grants.delete_grant,
        "Remove a user's grant (owner or admin)",
        ok=204,
        parameters=(p.DOC_ID, p.GRANTEE),
        errors=(401, 403, 404, 409, 422),
    ),
    Route(
        "PUT",
        "/documents/{doc_id}/visibility",
        grants.put_visibility,
        "Open a document to its org or make it private (owner or admin)",
        response="Document",
        parameters=(p.DOC_ID, p.IF_MATCH),
        body="VisibilityIn",
        errors=(400, 401, 403, 404, 409, 412, 415, 422),
    ),
    # -- audit trail and personal data, docs/compliance.md (audit.py, personal_data.py)
    Route(
        "GET",
        "/audit",
        audit.audit_trail,
        "The org's audit trail, newest first (admin)",
        response="AuditPage",
        parameters=p.AUDIT_QUERY,
        errors=(400, 401, 403, 422),
    ),
    Route(
        "GET",
        "/access-review",
        access_review.access_review,
        "Effective readers and writers per document or per user (admin; JSON or CSV)",
        response="AccessReviewPage",
        parameters=p.ACCESS_REVIEW_QUERY,
        errors=(400, 401, 403, 422),
        media=(("text/csv", p.ACCESS_REVIEW_CSV),),
        description="Org roles live in tokens: a document open to the org is read by every "
        "member whose token holds 'reader' and written by every 'writer'; a private one by "
        "the users listed and the org's admins (docs/compliance.md, 'Access reviews').",
    ),
    Route(
        "POST",
        "/access-review/attestations",
        access_review.attest,
        "Record a completed access review (admin; audited, append-only)",
        ok=201,
        response="AttestationOut",
        body="AttestationIn",
        errors=(400, 401, 403, 413, 415, 422),
    ),
    # -- signed webhooks: admins only (webhooks.py; docs/webhooks.md)
    Route(
        "POST",
        "/webhooks",
        webhooks.create_webhook,
        "Register a webhook endpoint (admin); its secret is in this answer only",
        ok=201,
        response="WebhookCreated",
        body="WebhookIn",
        errors=(400, 401, 403, 409, 413, 415, 422),
    ),
    Route(
        "GET",
        "/webhooks",
        webhooks.list_webhooks,
        "The org's webhook endpoints (admin; never their secrets)",
        response="WebhookList",
        errors=(401, 403),
    ),
    Route(
        "DELETE",
        "/webhooks/{webhook_id}",
        webhooks.delete_webhook,
        "Remove a webhook endpoint and its deliveries (admin)",
        ok=204,
        parameters=(p.WEBHOOK_ID,),
        errors=(401, 403, 404),
    ),
    Route(
        "POST",
        "/webhooks/{webhook_id}/rotate-secret",
        webhooks.rotate_secret,
        "A new secret (admin); the previous one also signs until previous_secret_until",
        response="WebhookCreated",
        parameters=(p.WEBHOOK_ID,),
        body={
            "required": False,
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/RotateIn"}}},
        },
        errors=(400, 401, 403, 404, 413, 415, 422),
    ),
    Route(
        "GET",
        "/webhooks/{webhook_id}/deliveries",
        webhooks.list_deliveries,
        "An endpoint's newest deliveries with their attempts (admin)",
        response="DeliveryList",
        parameters=(p.WEBHOOK_ID, *p.DELIVERIES_QUERY),
        errors=(400, 401, 403, 404, 422),
    ),
    Route(
        "POST",
        "/webhooks/{webhook_id}/deliveries/{delivery_id}/replay",
        webhooks.replay_delivery,
        "Send a dead-lettered (or delivered) delivery again; re-enables its endpoint (admin)",
        ok=202,
        response="Delivery",
        parameters=(p.WEBHOOK_ID, p.DELIVERY_ID),
        errors=(401, 403, 404, 409),
    ),
    Route(
        "POST",
        "/me/export",
        personal_data.start_export,
        "Start an export of the caller's data (202 + Location)",
        ok=202,
        response="ExportJob",
        errors=(401, 403),
    ),
    Route(
        "GET",
        "/me/export/{job_id}",
        personal_data.export_status,
        "An export's state; a presigned URL when ready",
        response="ExportJob",
        parameters=(p.JOB_ID,),
        errors=(401, 403, 404),
    ),
    Route(
        "POST",
        "/users/{user}/erasure",
        personal_data.erase_user,
        "Erase a user's personal data (admin)",
        response="ErasureOut",
        parameters=(p.USER,),
        body="ErasureIn",
        errors=(400, 401, 403, 413, 415, 422),
    ),
    # -- consent records, docs/compliance.md (consents.py)
    Route(
        "GET",
        "/me/consents",
        consents.my_consents,
        "The caller's consent per purpose",
        response="ConsentsOut",
        errors=(401, 403),
    ),
    Route(
        "PUT",
        "/me/consents",
        consents.put_my_consents,
        "Grant or withdraw the caller's consent to purposes (history kept, audited)",
        response="ConsentsOut",
        body="ConsentsIn",
        errors=(400, 401, 403, 413, 415, 422),
    ),
    Route(
        "GET",
        "/users/{user}/consents",
        consents.user_consents,
        "A user's consent per purpose (admin)",
        response="ConsentsOut",
        parameters=(p.USER,),
        errors=(401, 403, 422),
    ),
    # -- share notifications, docs/compliance.md (notifications.py)
    Route(
        "GET",
        "/me/notification-settings",
        notifications.my_settings,
        "The caller's share e-mail address and unsubscribe setting",
        response="NotificationSettingsOut",
        errors=(401, 403),
    ),
    Route(
        "PUT",
        "/me/notification-settings",
        notifications.put_my_settings,
        "Set the caller's share e-mail address (stored encrypted) or unsubscribe",
        response="NotificationSettingsOut",
        body="NotificationSettingsIn",
        errors=(400, 401, 403, 413, 415, 422),
    ),
)


def register(app: Chalice) -> None:
    """Bind every route of ``ROUTES`` to its view on ``app``.

    The methods of one path that share a view become one Chalice route (as
    ``methods=["GET", "HEAD"]`` would); every view takes any media type and
    checks the body's itself, so that a wrong one is a problem+json 415."""
    bound: dict[tuple[str, Callable[..., Response], bool], list[str]] = {}
    for route in ROUTES:
        bound.setdefault((route.path, route.view, route.public), []).append(route.method)
    for (path, view, opened), methods in bound.items():
        wrap = public(app) if opened else endpoint(app)
        app.route(path, methods=methods, content_types=ANY)(wrap(view))
