"""The served OpenAPI 3.1 document: the route table (``routes.py``) in contract form,
its bodies' schemas from the same pydantic models the API validates with.

Imported by the first ``GET /openapi.json`` only: building the models costs a
cold start ~10-25 ms that no other route should pay.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from chalicelib.api.openapi_notifications import MODELS as NOTIFICATION_MODELS
from chalicelib.api.openapi_webhooks import MODELS as WEBHOOK_MODELS
from chalicelib.api.route import Route
from chalicelib.domain.model import ID_REGEX, DocumentIn
from chalicelib.domain.search import SearchRequest


class ContentInfo(BaseModel):
    status: Literal["pending", "ready", "rejected"]
    size: int | None = None
    sha256: str | None = None
    content_type: str | None = None
    reason: str | None = None
    upload_id: str | None = None
    filename: str | None = None


class UploadIn(BaseModel):
    """Start a large-content upload: what the client is about to PUT."""

    content_type: str = Field(min_length=1, max_length=255)
    sha256: str | None = Field(default=None, description="hex, or base64 as x-amz-checksum-sha256")
    size: int | None = Field(default=None, ge=1)
    filename: str | None = Field(default=None, min_length=1, max_length=255)


class UploadTicket(BaseModel):
    upload_url: str
    method: Literal["PUT"]
    headers: dict[str, str]
    expires_at: str
    max_bytes: int
    upload_id: str
    version: int
    etag: str
    content: ContentInfo


class DocumentOut(BaseModel):
    model_config = ConfigDict(title="Document")

    id: str = Field(pattern=f"^{ID_REGEX}$")
    org: str
    title: str
    body: Any = None
    tags: list[str]
    metadata: dict[str, Any]
    version: int = Field(ge=1)
    etag: str
    owner: str
    created_at: str
    updated_at: str
    content: ContentInfo | None = None
    visibility: Literal["org", "private"] = Field(
        default="org",
        description="'org': every reader of the org reads it; 'private': its owner, the "
        "org's admins and its grantees only (PUT /documents/{id}/visibility changes it)",
    )


class DocumentPage(BaseModel):
    items: list[DocumentOut]
    next_page_token: str | None


class VersionOut(BaseModel):
    id: str
    version: int
    title: str
    author: str
    action: str
    deleted: bool
    created_at: str
    etag: str
    body: Any = None
    tags: list[str] | None = None
    metadata: dict[str, Any] | None = None
    content: ContentInfo | None = None


class VersionPage(BaseModel):
    items: list[VersionOut]
    next_page_token: str | None


class BatchIn(BaseModel):
    documents: list[DocumentIn] = Field(min_length=1, max_length=100)


class BatchItemResult(BaseModel):
    index: int
    status: int
    id: str | None = None
    version: int | None = None
    etag: str | None = None
    error: dict[str, Any] | None = None


class BatchResult(BaseModel):
    results: list[BatchItemResult]


class Problem(BaseModel):
    type: str
    title: str
    status: int
    detail: str
    instance: str | None = None
    errors: list[dict[str, Any]] | None = None


class Health(BaseModel):
    status: Literal["ok", "unavailable"]
    checks: dict[str, str]
    search_sync_lag_s: float | None = None


class SearchHit(BaseModel):
    id: str
    title: str
    score: float | None = Field(
        description="with sort=relevance: which query terms this document matches, and in "
        "which fields (title weighs 3, body_text and content_text 1); it depends on this "
        "document and the query only, never on other documents. null with sort=updated"
    )
    version: int
    updated_at: str
    highlight: dict[str, list[str]] | None = None


class SearchResult(BaseModel):
    hits: list[SearchHit]
    total: int = Field(
        description="how many documents match that the caller may read now (checked against "
        "the database, never the index's own count): exact when total_relation is 'eq', a "
        "lower bound when it is 'gte' (more than the 1000 first matches)",
        ge=0,
    )
    total_relation: Literal["eq", "gte"]
    next_page_token: str | None


class ChangeOut(BaseModel):
    seq: str = Field(
        description="this change's position, opaque (sealed, valid for this org only, a "
        "new string at every read): pass it as since= to resume right after this change. "
        "Not a counter: compare changes of one document by version",
        pattern=r"^[A-Za-z0-9_-]+$",
    )
    id: str
    version: int = Field(description="the document's version after this change")
    deleted: bool = Field(description="the change was a delete or a purge")
    at: str = Field(description="when the change's transaction started (RFC 3339)")


class ChangesPage(BaseModel):
    changes: list[ChangeOut]
    next: str = Field(
        description="opaque (sealed, valid for this org only): pass as since= to resume "
        "exactly after these changes",
        pattern=r"^[A-Za-z0-9_-]+$",
    )


# -- document permissions (docs/security.md, "Document permissions") -----
class GrantIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    role: Literal["reader", "writer"] = Field(
        description="narrows the grantee's org role, never widens it: a 'writer' grant to a "
        "user whose token says 'reader' only reads"
    )


class GrantOut(BaseModel):
    id: str
    user: str
    role: Literal["reader", "writer"]
    version: int = Field(description="the document's version after the change")


class GrantEntry(BaseModel):
    user: str
    role: Literal["reader", "writer"]
    granted_by: str
    granted_at: str


class GrantList(BaseModel):
    id: str
    owner: str
    visibility: Literal["org", "private"]
    version: int
    etag: str
    grants: list[GrantEntry]


class VisibilityIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    visibility: Literal["org", "private"]


# --- audit trail and personal data (docs/compliance.md) -------------
class AuditEntryOut(BaseModel):
    model_config = ConfigDict(title="AuditEntry")

    seq: int = Field(description="position in the org's hash chain")
    at: str
    actor: str | None = Field(description="the user id, or their pseudonym once erased")
    pseudonymous: bool
    action: str
    document: str | None
    version: int | None = Field(description="the version the change made")
    prev_version: int | None = Field(description="the version it started from")
    request_id: str | None
    details: dict[str, Any]


class AuditPage(BaseModel):
    items: list[AuditEntryOut]
    next_page_token: str | None


class RoleAndUsers(BaseModel):
    role: Literal["reader", "writer", "admin"] = Field(
        description="every org member whose token holds at least this role"
    )
    users: list[str] = Field(description="and these users by name (their token's role permitting)")


class GrantReview(BaseModel):
    user: str
    role: Literal["reader", "writer"]
    granted_by: str
    granted_at: str
    last_activity: str | None = Field(
        description="the grantee's latest audited action on the document (reads are not audited)"
    )
    stale: bool = Field(description="older than the window and no activity within it")


class DocumentAccessOut(BaseModel):
    model_config = ConfigDict(title="DocumentAccess")

    document: str
    visibility: Literal["org", "private"]
    owner: str
    readers: RoleAndUsers
    writers: RoleAndUsers
    grants: list[GrantReview]


class UserAccessOut(BaseModel):
    model_config = ConfigDict(title="UserAccess")

    user: str
    document: str | None = Field(description="null: reaches documents by the role rule alone")
    visibility: Literal["org", "private"] | None
    access: Literal["read", "write"] | None
    via: Literal["owner", "grant", "role"]
    role: Literal["reader", "writer"] | None
    granted_at: str | None
    last_activity: str | None
    stale: bool


class AccessReviewPage(BaseModel):
    view: Literal["documents", "users"]
    stale_after_days: int
    items: list[DocumentAccessOut] | list[UserAccessOut]
    next_page_token: str | None


class RevokedEntry(BaseModel):
    document: str
    user: str


class AttestationIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    notes: str = Field(max_length=4000)
    revoked: list[RevokedEntry] | None = Field(
        default=None, description="what the review revoked (up to 1000 entries)"
    )


class AttestationOut(BaseModel):
    id: str
    reviewed_by: str
    reviewed_at: str
    notes: str
    revoked: list[RevokedEntry]


class ExportJobOut(BaseModel):
    model_config = ConfigDict(title="ExportJob")

    id: str
    state: Literal["pending", "ready", "failed"]
    created_at: str
    status_url: str | None = None
    finished_at: str | None = None
    url: str | None = Field(default=None, description="presigned download URL, once ready")
    url_expires_in: int | None = None
    error: str | None = None


class ErasureIn(BaseModel):
    documents: str = Field(
        pattern="^(delete|reassign:.+)$",
        description='"delete", or "reassign:<user>" to give them to another user of the org',
    )


class ErasureOut(BaseModel):
    user: str
    documents: dict[str, Any]
    pii_fields_scrubbed: list[str]
    audit: Literal["pseudonymised"]


class ConsentsIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    consents: dict[str, bool] = Field(
        description="purpose -> granted (true) or withdrawn (false); the purposes are "
        "DOCS_CONSENT_PURPOSES, any other is a 422",
        min_length=1,
    )
    policy_version: str | None = Field(
        default=None,
        description="the policy version the user was shown; when sent it must be the one "
        "in force (DOCS_CONSENT_POLICY_VERSION), 422 otherwise",
    )


class ConsentStateOut(BaseModel):
    granted: bool = Field(description="false for a purpose never recorded")
    at: str | None = Field(description="when it was last granted or withdrawn")
    policy_version: str | None


class ConsentsOut(BaseModel):
    user: str | None = Field(default=None, description="the subject (admin read only)")
    consents: dict[str, ConsentStateOut] = Field(description="every configured purpose")


_VISIBILITY_PROPERTY = {
    "enum": ["org", "private"],
    "default": "org",
    "description": "on create only: 'private' opens the document to its owner, admins and "
    "grantees alone; a replace must repeat the current value or leave it out (409 otherwise: "
    "PUT /documents/{id}/visibility changes it)",
}


_MODELS: list[type[BaseModel]] = [
    DocumentIn,
    DocumentOut,
    DocumentPage,
    VersionOut,
    VersionPage,
    BatchIn,
    BatchResult,
    Problem,
    Health,
    UploadIn,
    UploadTicket,
    SearchRequest,
    SearchResult,
    ChangesPage,
    GrantIn,
    GrantOut,
    GrantList,
    VisibilityIn,
    AuditPage,
    AccessReviewPage,
    AttestationIn,
    AttestationOut,
    ExportJobOut,
    ErasureIn,
    ErasureOut,
    ConsentsIn,
    ConsentsOut,
    *NOTIFICATION_MODELS,
    *WEBHOOK_MODELS,
]


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


# -- links (OpenAPI 3.1): a response that returns a document names the operations on
# it, with its id and ETag (schemathesis's stateful phase follows them)
_BY_ID = {"doc_id": "$response.body#/id"}
_WITH_ETAG = {**_BY_ID, "header.If-Match": "$response.header.ETag"}
_DOCUMENT_LINKS: dict[str, Any] = {
    "GetDocument": {"operationId": "get_documents_doc_id", "parameters": _BY_ID},
    "ReplaceDocument": {"operationId": "put_documents_doc_id", "parameters": _WITH_ETAG},
    "PatchDocument": {"operationId": "patch_documents_doc_id", "parameters": _WITH_ETAG},
    "ChangeDocument": {"operationId": "post_documents_doc_id_changes", "parameters": _WITH_ETAG},
    "DeleteDocument": {"operationId": "delete_documents_doc_id", "parameters": _WITH_ETAG},
    "ListVersions": {"operationId": "get_documents_doc_id_versions", "parameters": _BY_ID},
    "ReadVersion": {
        "operationId": "get_documents_doc_id_versions_n",
        "parameters": {**_BY_ID, "n": "$response.body#/version"},
    },
}


def _request_body(body: str | dict[str, Any]) -> dict[str, Any]:
    if isinstance(body, str):  # one JSON model
        return {"required": True, "content": {"application/json": {"schema": _ref(body)}}}
    return body


def _operation(route: Route) -> dict[str, Any]:
    ok: dict[str, Any] = {"description": "OK"}
    if route.response is not None:
        ok["content"] = {"application/json": {"schema": _ref(route.response)}}
    for media, content in route.media:
        ok.setdefault("content", {})[media] = content
    responses: dict[str, Any] = {str(route.ok): ok}
    for status, description in route.also:
        responses[str(status)] = {**(ok if status != 304 else {}), "description": description}
    if route.response == "Document":
        for code in ("200", "201"):
            if code in responses:
                responses[code] = {**responses[code], "links": _DOCUMENT_LINKS}
    # an id that is not a valid document id is a 422 wherever one is taken
    invalid_id = [422] if "{doc_id}" in route.path and 422 not in route.errors else []
    for status in [*route.errors, *invalid_id, *([] if route.public else [429, 503])]:
        responses[str(status)] = {
            "description": "Problem",
            "content": {"application/problem+json": {"schema": _ref("Problem")}},
        }
    op: dict[str, Any] = {
        "summary": route.summary,
        "parameters": list(route.parameters),
        "responses": responses,
        "operationId": operation_id(route),
    }
    if route.body is not None:
        op["requestBody"] = _request_body(route.body)
    if route.description is not None:
        op["description"] = route.description
    if route.public:
        op["security"] = []
    return op


def operation_id(route: Route) -> str:
    """``get_documents_doc_id``: the method and the path's words (what links name)."""
    name = route.path.strip("/").replace("/", "_").replace("{", "").replace("}", "")
    return f"{route.method.lower()}_{name}"


def openapi_document(routes: tuple[Route, ...]) -> dict[str, Any]:
    """The OpenAPI 3.1 document of ``routes`` (the route table), its bodies' schemas
    from ``_MODELS``."""
    schemas: dict[str, Any] = {}
    for model in _MODELS:
        schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
        for name, sub in schema.pop("$defs", {}).items():
            schemas[name] = sub
        schemas[schema.get("title", model.__name__)] = schema
    # a create (or replace) may carry the visibility besides the editable part
    schemas["DocumentIn"]["properties"]["visibility"] = _VISIBILITY_PROPERTY
    paths: dict[str, Any] = {}
    for route in routes:
        paths.setdefault(route.path, {})[route.method.lower()] = _operation(route)
    return {
        "openapi": "3.1.0",
        "info": {"title": "Document service", "version": "1.0.0"},
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
            },
        },
        "security": [{"bearer": []}],
    }
