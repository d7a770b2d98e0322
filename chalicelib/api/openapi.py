"""OpenAPI 3.1 document, generated from the same pydantic models the API validates with.

``OPERATIONS`` is the route table in contract form; a test checks it lists
exactly the routes the Chalice app serves, so the spec cannot drift.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from chalicelib.domain.model import ID_REGEX, ID_SCHEMA_PATTERN, DocumentIn
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


USER_ID_RULE = (
    "a user id: 1-256 characters in Unicode NFC, no whitespace at either end, single "
    "plain spaces inside only, no control, format or other separator characters, no '*' "
    "or '/'; compared exactly (docs/security.md, 'Look-alike user ids'); any other is a 422"
)


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
]


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


_ID = {
    "name": "doc_id",
    "in": "path",
    "required": True,
    # the whole value (no trailing newline), and not the dot segments "." and ".."
    "schema": {"type": "string", "pattern": ID_SCHEMA_PATTERN},
}
_N = {"name": "n", "in": "path", "required": True, "schema": {"type": "integer", "minimum": 1}}
_PAGE = (
    {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 100}},
    {"name": "page_token", "in": "query", "schema": {"type": "string"}},
)
# '*' or a list of entity tags (RFC 9110), as domain/model.py check_precondition_header
# accepts them (printable ASCII here: what an HTTP header carries portably)
_ETAG_LIST = r'^(\*|(W/)?"[!#-~]*"([ \t]*,[ \t]*(W/)?"[!#-~]*")*)$'
_IF_MATCH = {
    "name": "If-Match",
    "in": "header",
    "schema": {"type": "string", "pattern": _ETAG_LIST},
    "description": "'*' or the document's ETag: a quoted string, as the ETag header gives it "
    "(an unquoted value is a 400)",
}
# writes to an existing document without If-Match are 428
_IF_MATCH_REQUIRED = {**_IF_MATCH, "required": True}
_PATCH_BODY = {
    "required": True,
    "content": {
        "application/json-patch+json": {
            "schema": {"type": "array", "items": {"type": "object"}, "maxItems": 1000}
        },
        "application/merge-patch+json": {"schema": {"type": "object"}},
    },
}
_BATCH_BODY = {"required": True, "content": {"application/json": {"schema": _ref("BatchIn")}}}
_DOC_BODY = {"required": True, "content": {"application/json": {"schema": _ref("DocumentIn")}}}


@dataclass(frozen=True)
class Operation:
    """One route in contract form."""

    method: str
    path: str
    summary: str
    ok: int  # the success status
    schema: str | None = None  # the success body's component schema
    parameters: tuple[dict[str, Any], ...] = ()
    body: dict[str, Any] | None = None  # the request body
    errors: tuple[int, ...] = ()  # problem statuses (429 and 503 are added to authenticated ones)
    auth: bool = True
    also: tuple[tuple[int, str], ...] = ()  # other successes: (status, description)
    description: str | None = None


_FEED_PARAMETERS = (
    {"name": "since", "in": "query",
     "schema": {"type": "string", "pattern": "^(|0|now|[A-Za-z0-9_-]+)$"},
     "description": "a previous response's 'next' (or a change's 'seq') of the same org, "
                    "'0' (from the start) or 'now'; anything else is a 400"},
    {"name": "limit", "in": "query",
     "schema": {"type": "integer", "minimum": 1, "maximum": 1000}},
    {"name": "feed", "in": "query", "schema": {"enum": ["normal", "longpoll", "eventsource"]}},
    {"name": "timeout", "in": "query",
     "schema": {"type": "number", "minimum": 0, "maximum": 20},
     "description": "with feed=longpoll: seconds to wait for a change (default and at most "
                    "20); the answer comes at the latest after this, so a client's read "
                    "timeout must be longer (e.g. timeout + 5 s)"},
)  # fmt: skip
_IF_NONE_MATCH = {"name": "If-None-Match", "in": "header", "schema": {"type": "string"}}
_UPLOAD_BODY = {"required": True, "content": {"application/json": {"schema": _ref("UploadIn")}}}
_SEARCH_BODY = {
    "required": True,
    "content": {"application/json": {"schema": _ref("SearchRequest")}},
}
_WRITE_ERRORS = (400, 401, 403, 413, 415, 422)
_USER = {
    "name": "user",
    "in": "path",
    "required": True,
    "schema": {"type": "string", "minLength": 1, "maxLength": 256},
    "description": "the grantee's user id (the 'sub' of its tokens), in the caller's org: "
    + USER_ID_RULE,
}
_GRANT_BODY = {"required": True, "content": {"application/json": {"schema": _ref("GrantIn")}}}
_VISIBILITY_BODY = {
    "required": True,
    "content": {"application/json": {"schema": _ref("VisibilityIn")}},
}
_PATCH_ERRORS = (400, 401, 403, 404, 409, 412, 413, 415, 422, 428)

OPERATIONS: tuple[Operation, ...] = (
    Operation("post", "/documents", "Create a document", 201, "Document",
              body=_DOC_BODY, errors=_WRITE_ERRORS),
    Operation("post", "/documents:batch", "Create up to 100 documents (each reported separately)",
              200, "BatchResult", body=_BATCH_BODY, errors=_WRITE_ERRORS),
    Operation("get", "/documents", "List documents, newest first", 200, "DocumentPage",
              (*_PAGE, {"name": "tag", "in": "query", "schema": {"type": "string"}}),
              errors=(400, 401, 403)),
    Operation("get", "/documents/{doc_id}", "Read a document", 200, "Document",
              (_ID, _IF_NONE_MATCH), errors=(401, 403, 404),
              also=((304, "Not modified: If-None-Match matched the current ETag (no body)"),)),
    Operation("put", "/documents/{doc_id}", "Create or replace a document", 200, "Document",
              (_ID, _IF_MATCH, _IF_NONE_MATCH), _DOC_BODY,
              (400, 401, 403, 409, 412, 413, 415, 422, 428),
              also=((201, "Created: there was no document with this id (Location, ETag)"),),
              description="An id taken by a document the caller may not read answers as a "
              "never-used id under If-Match (412); a create there is refused as for any taken "
              "id (409, or 412 under If-None-Match: *) with nothing of the document "
              "(docs/security.md, 'Hidden documents and chosen ids')."),
    Operation("patch", "/documents/{doc_id}", "Apply a JSON Patch or merge patch", 200,
              "Document", (_ID, _IF_MATCH_REQUIRED), _PATCH_BODY, _PATCH_ERRORS),
    Operation("delete", "/documents/{doc_id}", "Soft-delete a document", 204, None,
              (_ID, _IF_MATCH), errors=(400, 401, 403, 404, 412)),
    Operation("post", "/documents/{doc_id}/changes", "Apply a JSON Patch or merge patch", 200,
              "Document", (_ID, _IF_MATCH_REQUIRED), _PATCH_BODY, _PATCH_ERRORS),
    Operation("post", "/documents/{doc_id}/restore", "Undo a soft delete (admin)", 200,
              "Document", (_ID,), errors=(401, 403, 404, 409, 410)),
    Operation("get", "/documents/{doc_id}/versions", "List versions, newest first", 200,
              "VersionPage", (_ID, *_PAGE), errors=(400, 401, 403, 404)),
    Operation("get", "/documents/{doc_id}/versions/{n}", "Read one version", 200, "VersionOut",
              (_ID, _N), errors=(400, 401, 403, 404)),
    Operation("post", "/documents/{doc_id}/versions/{n}/restore", "Make version n current", 200,
              "Document", (_ID, _N, _IF_MATCH_REQUIRED),
              errors=(400, 401, 403, 404, 412, 413, 422, 428)),
    Operation("post", "/documents/{doc_id}/content",
              "Start a large-content upload (presigned S3 PUT)", 200, "UploadTicket",
              (_ID, _IF_MATCH), _UPLOAD_BODY, (400, 401, 403, 404, 412, 413, 415, 422)),
    Operation("get", "/documents/{doc_id}/content",
              "Download the content: 302 to a presigned S3 GET", 302, None, (_ID,),
              errors=(401, 403, 404, 409)),
    Operation("head", "/documents/{doc_id}/content",
              "Size and SHA-256 of the content (X-Content-*)", 200, None, (_ID,),
              errors=(401, 403, 404, 409)),
    Operation("get", "/documents/{doc_id}/versions/{n}/content",
              "Download one version's content (302)", 302, None, (_ID, _N),
              errors=(400, 401, 403, 404, 409)),
    Operation("head", "/documents/{doc_id}/versions/{n}/content",
              "Size and SHA-256 of a version's content", 200, None, (_ID, _N),
              errors=(400, 401, 403, 404, 409)),
    Operation("post", "/search", "Full-text search in the caller's org", 200, "SearchResult",
              body=_SEARCH_BODY, errors=_WRITE_ERRORS),
    Operation("get", "/changes", "Changes feed (resumable cursor, optional long-poll)", 200,
              "ChangesPage", _FEED_PARAMETERS, errors=(400, 401, 403, 410)),
    Operation("get", "/health", "Liveness and dependencies", 200, "Health", errors=(503,),
              auth=False),
    Operation("get", "/openapi.json", "This document", 200, None, auth=False),
    # document permissions: the owner or an admin; a change is a new version
    Operation("get", "/documents/{doc_id}/grants", "List a document's grants (owner or admin)",
              200, "GrantList", (_ID,), errors=(401, 403, 404)),
    Operation("put", "/documents/{doc_id}/grants/{user}",
              "Add or change a user's grant (owner or admin; same org only)", 200, "GrantOut",
              (_ID, _USER), _GRANT_BODY, (400, 401, 403, 404, 409, 415, 422)),
    Operation("delete", "/documents/{doc_id}/grants/{user}",
              "Remove a user's grant (owner or admin)", 204, None, (_ID, _USER),
              errors=(401, 403, 404, 409, 422)),
    Operation("put", "/documents/{doc_id}/visibility",
              "Open a document to its org or make it private (owner or admin)", 200, "Document",
              (_ID, _IF_MATCH), _VISIBILITY_BODY, (400, 401, 403, 404, 409, 412, 415, 422)),
)  # fmt: skip


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


_MODELS += [AuditPage, ExportJobOut, ErasureIn, ErasureOut]
_USER = {
    "name": "user",
    "in": "path",
    "required": True,
    "schema": {"type": "string", "minLength": 1, "maxLength": 256},
    "description": USER_ID_RULE,
}
_JOB = {"name": "job_id", "in": "path", "required": True, "schema": {"type": "string"}}
_AUDIT_PARAMETERS = (
    {"name": "document", "in": "query", "schema": {"type": "string"}},
    {"name": "user", "in": "query", "schema": {"type": "string"}, "description": USER_ID_RULE},
    {"name": "since", "in": "query", "schema": {"type": "string", "format": "date-time"}},
    {"name": "page_token", "in": "query", "schema": {"type": "string"}},
    {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 500}},
)
OPERATIONS += (
    Operation(
        "get",
        "/audit",
        "The org's audit trail, newest first (admin)",
        200,
        "AuditPage",
        _AUDIT_PARAMETERS,
        errors=(400, 401, 403, 422),
    ),
    Operation(
        "post",
        "/me/export",
        "Start an export of the caller's data (202 + Location)",
        202,
        "ExportJob",
        errors=(401, 403),
    ),
    Operation(
        "get",
        "/me/export/{job_id}",
        "An export's state; a presigned URL when ready",
        200,
        "ExportJob",
        (_JOB,),
        errors=(401, 403, 404),
    ),
    Operation(
        "post",
        "/users/{user}/erasure",
        "Erase a user's personal data (admin)",
        200,
        "ErasureOut",
        (_USER,),
        {"required": True, "content": {"application/json": {"schema": _ref("ErasureIn")}}},
        (400, 401, 403, 413, 415, 422),
    ),
)
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


def _operation(o: Operation) -> dict[str, Any]:
    ok: dict[str, Any] = {"description": "OK"}
    if o.schema is not None:
        ok["content"] = {"application/json": {"schema": _ref(o.schema)}}
    responses: dict[str, Any] = {str(o.ok): ok}
    if o.path == "/documents:batch":  # some items failed: each result says which
        responses["207"] = {**ok, "description": "Partly created"}
    for status, description in o.also:
        responses[str(status)] = {**(ok if status != 304 else {}), "description": description}
    if o.schema == "Document":
        for code in ("200", "201"):
            if code in responses:
                responses[code] = {**responses[code], "links": _DOCUMENT_LINKS}
    # an id that is not a valid document id is a 422 wherever one is taken
    invalid_id = [422] if "{doc_id}" in o.path and 422 not in o.errors else []
    for status in [*o.errors, *invalid_id, *([429, 503] if o.auth else [])]:
        responses[str(status)] = {
            "description": "Problem",
            "content": {"application/problem+json": {"schema": _ref("Problem")}},
        }
    name = o.path.strip("/").replace("/", "_").replace("{", "").replace("}", "")
    op: dict[str, Any] = {
        "summary": o.summary,
        "parameters": list(o.parameters),
        "responses": responses,
        "operationId": f"{o.method}_{name}",
    }
    if o.body is not None:
        op["requestBody"] = o.body
    if o.description is not None:
        op["description"] = o.description
    if not o.auth:
        op["security"] = []
    return op


@lru_cache(maxsize=1)
def openapi_document() -> dict[str, Any]:
    schemas: dict[str, Any] = {}
    for model in _MODELS:
        schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
        for name, sub in schema.pop("$defs", {}).items():
            schemas[name] = sub
        schemas[schema.get("title", model.__name__)] = schema
    # a create (or replace) may carry the visibility besides the editable part
    schemas["DocumentIn"]["properties"]["visibility"] = _VISIBILITY_PROPERTY
    paths: dict[str, Any] = {}
    for operation in OPERATIONS:
        paths.setdefault(operation.path, {})[operation.method] = _operation(operation)
    _realtime(paths)
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


# -- real-time (docs/realtime.md) ----------------------------------------
_EVENT_STREAM_DESCRIPTION = (
    "With feed=eventsource: server-sent events, one 'change' event per change "
    "(data: {type, id, version, etag, deleted, seq, at}; id: that change's cursor), "
    "heartbeats as ':' comment lines. Resume with Last-Event-ID (the same cursor "
    "rules as 'since'). The local server streams it. Through API Gateway REST and "
    "Lambda, which cannot stream, it is one batch of the changes available now that "
    "ends with 'retry:', so an EventSource reconnects and reads on; in AWS the "
    "WebSocket API (docs/realtime.md, docs/asyncapi.yaml) is the live path."
)


_SSE_EVENT = {
    "type": "object",
    "required": ["event", "data"],
    "properties": {
        "event": {"type": "string"},
        "data": {"type": "string"},
        "id": {"type": "string"},
        "retry": {"type": "integer", "minimum": 0},
    },
}


def _realtime(paths: dict[str, Any]) -> None:
    """GET /changes also answers ``text/event-stream`` (feed=eventsource)."""
    op = paths["/changes"]["get"]
    resume = "feed=eventsource: resume after this event id"
    op["parameters"].append(
        {"name": "Last-Event-ID", "in": "header", "schema": {"type": "string"},
         "description": resume}
    )  # fmt: skip
    op["responses"]["200"]["content"]["text/event-stream"] = {
        # OpenAPI 3.1 (no itemSchema): the schema of one event, as an SSE parser reads it
        "schema": _SSE_EVENT,
        "description": _EVENT_STREAM_DESCRIPTION,
    }
    op["description"] = _EVENT_STREAM_DESCRIPTION
