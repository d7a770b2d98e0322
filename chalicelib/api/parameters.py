"""The parameters, request bodies and error sets that routes share, in OpenAPI form.

Plain dicts and tuples, cheap to import: the route table (``routes.py``) names
them in its entries; ``openapi.py`` copies them into the served document.
"""

from __future__ import annotations

from typing import Any

from chalicelib.domain.model import ID_SCHEMA_PATTERN

Parameter = dict[str, Any]

USER_ID_RULE = (
    "a user id: 1-256 characters in Unicode NFC, no whitespace at either end, single "
    "plain spaces inside only, no control, format or other separator characters, no '*' "
    "or '/'; compared exactly (docs/security.md, 'Look-alike user ids'); any other is a 422"
)

DOC_ID: Parameter = {
    "name": "doc_id",
    "in": "path",
    "required": True,
    # the whole value (no trailing newline), and not the dot segments "." and ".."
    "schema": {"type": "string", "pattern": ID_SCHEMA_PATTERN},
}
VERSION_N: Parameter = {
    "name": "n",
    "in": "path",
    "required": True,
    "schema": {"type": "integer", "minimum": 1},
}
PAGE: tuple[Parameter, ...] = (
    {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 100}},
    {"name": "page_token", "in": "query", "schema": {"type": "string"}},
)
TAG: Parameter = {"name": "tag", "in": "query", "schema": {"type": "string"}}
# '*' or a list of entity tags (RFC 9110), as domain/model.py check_precondition_header
# accepts them (printable ASCII here: what an HTTP header carries portably)
_ETAG_LIST = r'^(\*|(W/)?"[!#-~]*"([ \t]*,[ \t]*(W/)?"[!#-~]*")*)$'
IF_MATCH: Parameter = {
    "name": "If-Match",
    "in": "header",
    "schema": {"type": "string", "pattern": _ETAG_LIST},
    "description": "'*' or the document's ETag: a quoted string, as the ETag header gives it "
    "(an unquoted value is a 400)",
}
# writes to an existing document without If-Match are 428
IF_MATCH_REQUIRED: Parameter = {**IF_MATCH, "required": True}
IF_NONE_MATCH: Parameter = {"name": "If-None-Match", "in": "header", "schema": {"type": "string"}}
GRANTEE: Parameter = {
    "name": "user",
    "in": "path",
    "required": True,
    "schema": {"type": "string", "minLength": 1, "maxLength": 256},
    "description": "the grantee's user id (the 'sub' of its tokens), in the caller's org: "
    + USER_ID_RULE,
}
USER: Parameter = {**GRANTEE, "description": USER_ID_RULE}
JOB_ID: Parameter = {"name": "job_id", "in": "path", "required": True, "schema": {"type": "string"}}
AUDIT_QUERY: tuple[Parameter, ...] = (
    {"name": "document", "in": "query", "schema": {"type": "string"}},
    {"name": "user", "in": "query", "schema": {"type": "string"}, "description": USER_ID_RULE},
    {"name": "since", "in": "query", "schema": {"type": "string", "format": "date-time"}},
    {"name": "page_token", "in": "query", "schema": {"type": "string"}},
    {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 500}},
)

ACCESS_REVIEW_QUERY: tuple[Parameter, ...] = (
    {
        "name": "view",
        "in": "query",
        "schema": {"enum": ["documents", "users"], "default": "documents"},
        "description": "one item per document, or one per user and document reached by name",
    },
    {"name": "page_token", "in": "query", "schema": {"type": "string"}},
    {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 500}},
)
ACCESS_REVIEW_CSV: dict[str, Any] = {
    "schema": {"type": "string"},
    "description": "the same page as CSV (a header line first); the next page in a "
    "'Link: <...>; rel=\"next\"' header",
}

WEBHOOK_ID: Parameter = {
    "name": "webhook_id",
    "in": "path",
    "required": True,
    "schema": {"type": "string", "pattern": "^[0-9A-HJKMNP-TV-Z]{26}$"},
}
DELIVERY_ID: Parameter = {
    "name": "delivery_id",
    "in": "path",
    "required": True,
    "schema": {"type": "string", "pattern": "^msg_[0-9A-HJKMNP-TV-Z]{26}$"},
}
DELIVERIES_QUERY: tuple[Parameter, ...] = (
    {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 200}},
)

# -- the changes feed and its server-sent events (docs/realtime.md) ----------
FEED_QUERY: tuple[Parameter, ...] = (
    {
        "name": "since",
        "in": "query",
        "schema": {"type": "string", "pattern": "^(|0|now|[A-Za-z0-9_-]+)$"},
        "description": "a previous response's 'next' (or a change's 'seq') of the same org, "
        "'0' (from the start) or 'now'; anything else is a 400",
    },
    {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 1000}},
    {"name": "feed", "in": "query", "schema": {"enum": ["normal", "longpoll", "eventsource"]}},
    {
        "name": "timeout",
        "in": "query",
        "schema": {"type": "number", "minimum": 0, "maximum": 20},
        "description": "with feed=longpoll: seconds to wait for a change (default and at most "
        "20); the answer comes at the latest after this, so a client's read "
        "timeout must be longer (e.g. timeout + 5 s)",
    },
)
LAST_EVENT_ID: Parameter = {
    "name": "Last-Event-ID",
    "in": "header",
    "schema": {"type": "string"},
    "description": "feed=eventsource: resume after this event id",
}
EVENT_STREAM_DESCRIPTION = (
    "With feed=eventsource: server-sent events, one 'change' event per change "
    "(data: {type, id, version, etag, deleted, seq, at}; id: that change's cursor), "
    "heartbeats as ':' comment lines. Resume with Last-Event-ID (the same cursor "
    "rules as 'since'). The local server streams it. Through API Gateway REST and "
    "Lambda, which cannot stream, it is one batch of the changes available now that "
    "ends with 'retry:', so an EventSource reconnects and reads on; in AWS the "
    "WebSocket API (docs/realtime.md, docs/asyncapi.yaml) is the live path."
)
EVENT_STREAM: dict[str, Any] = {
    # OpenAPI 3.1 (no itemSchema): the schema of one event, as an SSE parser reads it
    "schema": {
        "type": "object",
        "required": ["event", "data"],
        "properties": {
            "event": {"type": "string"},
            "data": {"type": "string"},
            "id": {"type": "string"},
            "retry": {"type": "integer", "minimum": 0},
        },
    },
    "description": EVENT_STREAM_DESCRIPTION,
}

# -- request bodies that are not one JSON model ------------------------------
PATCH_BODY: dict[str, Any] = {
    "required": True,
    "content": {
        "application/json-patch+json": {
            "schema": {"type": "array", "items": {"type": "object"}, "maxItems": 1000}
        },
        "application/merge-patch+json": {"schema": {"type": "object"}},
    },
}

# -- problem statuses (429 and 503 are added to every authenticated route) ---
WRITE_ERRORS = (400, 401, 403, 413, 415, 422)
PATCH_ERRORS = (400, 401, 403, 404, 409, 412, 413, 415, 422, 428)
