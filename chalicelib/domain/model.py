"""The document model: what a document is, its editable part, version/ETag rules.

A document's *editable* part (title, body, tags, metadata) is what clients
write; everything else (id, org, version, owner, timestamps, content) is
assigned by the service.  Every committed change bumps ``version`` by one;
the ETag is a strong validator derived from (org, id, version), so it changes
exactly when the representation does.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from chalicelib.domain.errors import (
    BadRequest,
    PayloadTooLarge,
    PreconditionFailed,
    PreconditionRequired,
    ValidationFailed,
)
from chalicelib.domain.timestamps import iso_z

# matched with ``fullmatch`` (``$`` would also match before a trailing newline);
# "." and ".." are refused apart: clients normalise them out of URLs
ID_REGEX = r"[A-Za-z0-9._-]{1,128}"
ID_PATTERN = re.compile(ID_REGEX)
_DOT_SEGMENTS = frozenset({".", ".."})
# the same rule as a JSON Schema pattern (the OpenAPI document): anchored, no dot segments
ID_SCHEMA_PATTERN = rf"^(?!\.{{1,2}}$){ID_REGEX}$"
EDITABLE_FIELDS = ("title", "body", "tags", "metadata")
READ_ONLY_FIELDS = (
    "id",
    "org",
    "version",
    "etag",
    "owner",
    "created_at",
    "updated_at",
    "content",
    "visibility",  # changed with PUT /documents/{id}/visibility (owner or admin)
)
_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


class DocumentIn(BaseModel):
    """The editable part of a document, as clients send it (POST, PUT, patch results)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    title: str = Field(min_length=1, max_length=500)
    body: Any = None
    tags: list[str] = Field(
        default_factory=list,
        max_length=100,
        # what the validator below enforces, stated in the JSON schema too
        json_schema_extra={"items": {"type": "string", "minLength": 1, "maxLength": 64}},
    )
    metadata: dict[str, Any] = Field(default_factory=dict)

    @field_validator("tags")
    @classmethod
    def _tags_are_short_and_unique(cls, tags: list[str]) -> list[str]:
        for tag in tags:
            if not 1 <= len(tag) <= 64:
                raise ValueError("each tag must be 1 to 64 characters")
        return list(dict.fromkeys(tags))


@dataclass(frozen=True)
class Limits:
    """What a stored document may be: the limits hold for every write's *result*
    (a create, a replace, a patch, a version restore), not only for requests.

    ``max_bytes`` bounds the editable part as compact UTF-8 JSON (what a PUT of
    it would send); ``max_depth`` its nesting, the outer object counting 1, as
    for a request; ``max_patch_ops`` the operations of one JSON Patch.
    """

    max_bytes: int = 1024 * 1024
    max_depth: int = 32
    max_patch_ops: int = 1000


DEFAULT_LIMITS = Limits()


def json_size(value: Any) -> int:
    """Bytes of ``value`` as compact UTF-8 JSON."""
    return len(json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode())


def json_depth(value: Any, limit: int) -> int:
    """Depth of nested containers (a scalar is 0), without recursion, so deep
    input cannot blow the stack; stops counting once past ``limit``."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict | list):
            deepest = max(deepest, depth)
            if deepest > limit:
                return deepest
            children = node.values() if isinstance(node, dict) else node
            stack.extend((child, depth + 1) for child in children)
    return deepest


def too_deep(limits: Limits) -> ValidationFailed:
    return ValidationFailed(
        f"The document would be nested deeper than {limits.max_depth} levels.",
        errors=[{"loc": [], "msg": "too deeply nested", "type": "depth_limit"}],
    )


def too_large(limits: Limits) -> PayloadTooLarge:
    return PayloadTooLarge(
        f"The document would be over {limits.max_bytes} bytes as JSON; "
        "keep large content out of 'body' and upload it with POST /documents/{id}/content."
    )


def check_limits(editable: dict[str, Any], limits: Limits) -> None:
    """413 / 422 unless the editable part is within the size and depth limits."""
    if json_depth(editable, limits.max_depth) > limits.max_depth:
        raise too_deep(limits)
    if json_size(editable) > limits.max_bytes:
        raise too_large(limits)


def validate_editable(data: Any, limits: Limits = DEFAULT_LIMITS) -> DocumentIn:
    """Validate client JSON (or a patch result) into ``DocumentIn``, within ``limits``;
    raise 422 with per-field errors (413 when too large)."""
    if isinstance(data, dict):
        check_limits(data, limits)
    if not isinstance(data, dict):
        raise ValidationFailed(
            "The request body must be a JSON object.",
            errors=[{"loc": [], "msg": "expected an object", "type": "type_error"}],
        )
    try:
        return DocumentIn.model_validate(data)
    except ValidationError as exc:
        errors = [{"loc": list(e["loc"]), "msg": e["msg"], "type": e["type"]} for e in exc.errors()]
        raise ValidationFailed("The document is not valid.", errors=errors) from None


def is_valid_id(doc_id: str) -> bool:
    return ID_PATTERN.fullmatch(doc_id) is not None and doc_id not in _DOT_SEGMENTS


def validate_id(doc_id: str) -> str:
    if not is_valid_id(doc_id):
        raise ValidationFailed(
            "Document ids are 1-128 characters of A-Z, a-z, 0-9, '.', '_' or '-' "
            "(and not '.' or '..').",
            errors=[{"loc": ["path", "id"], "msg": "invalid id", "type": "value_error"}],
        )
    return doc_id


def new_id() -> str:
    """A ULID: 48-bit millisecond timestamp + 80 random bits, Crockford base32."""
    value = (int(time.time() * 1000) << 80) | int.from_bytes(os.urandom(10), "big")
    return _crockford(value)


# the header a response replayed for a repeated Idempotency-Key carries
IDEMPOTENT_REPLAYED = "Idempotent-Replayed"


def idempotent_id(org: str, sub: str, key: str) -> str:
    """The id a create with this Idempotency-Key gets: the same for every retry,
    so a retry after an unknown commit outcome finds the first attempt's
    document instead of creating a second one (26 chars, like a ULID)."""
    digest = hashlib.sha256("\0".join(("create", org, sub, key)).encode()).digest()
    return _crockford(int.from_bytes(digest[:16], "big") >> 2)


def _crockford(value: int) -> str:
    chars = []
    for _ in range(26):
        chars.append(_CROCKFORD[value & 31])
        value >>= 5
    return "".join(reversed(chars))


def make_etag(org: str, doc_id: str, version: int) -> str:
    digest = hashlib.sha256(f"{org}\x00{doc_id}\x00{version}".encode()).hexdigest()[:24]
    return f'"{digest}"'


_LIST_ITEM = re.compile(r'[ \t]*((?:W/)?"[^"]*"|[^,]*?)[ \t]*(?:,|$)')


def _etag_list(header: str) -> list[str]:
    """The members of a comma-separated list of entity tags.  A comma *inside* a
    quoted tag is part of it (RFC 9110 allows it; splitting on every comma made a
    valid tag a 400); anything unquoted is one member."""
    items: list[str] = []
    pos = 0
    while pos < len(header):
        match = _LIST_ITEM.match(header, pos)
        if match is None or match.end() == pos:
            break
        if match.group(1):
            items.append(match.group(1))
        pos = match.end()
    return items


_ENTITY_TAG = re.compile(r'(W/)?"[\x21\x23-\x7e\x80-\uffff]*"')


def check_precondition_header(name: str, header: str) -> None:
    """400 unless ``header`` is ``*`` or a list of entity tags (RFC 9110 8.8.3): an
    unquoted value is a client mistake to name, not a precondition that failed."""
    tags = _etag_list(header)
    if tags == ["*"]:
        return
    if not tags or not all(_ENTITY_TAG.fullmatch(tag) for tag in tags):
        raise BadRequest(
            f"{name} must be '*' or a list of ETags, which are quoted strings "
            f'(for example {name}: "a1b2c3", as the ETag header gives them).'
        )


def if_match_satisfied(header: str, current_etag: str | None) -> bool:
    """RFC 9110 If-Match with strong comparison; ``*`` matches any existing representation."""
    if current_etag is None:
        return False
    tags = _etag_list(header)
    return "*" in tags or current_etag in tags


def if_none_match_matches(header: str, current_etag: str | None) -> bool:
    """True when If-None-Match matches (weak comparison, as RFC 9110 says for it)."""
    if current_etag is None:
        return False
    tags = [t.removeprefix("W/") for t in _etag_list(header)]
    return "*" in tags or current_etag in tags


@dataclass(frozen=True)
class Document:
    org: str
    id: str
    title: str
    body: Any
    tags: list[str]
    metadata: dict[str, Any]
    version: int
    owner: str
    created_at: datetime
    updated_at: datetime
    deleted_at: datetime | None = None
    content: dict[str, Any] | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    # document permissions (domain/access.py): read with the row, in the same statement
    visibility: str = "org"
    # grantee -> 'reader' | 'writer'; point reads fill it for private documents only (an
    # open document's grants decide nothing until it is made private)
    grants: dict[str, str] = field(default_factory=dict)

    @property
    def etag(self) -> str:
        return make_etag(self.org, self.id, self.version)

    @property
    def deleted(self) -> bool:
        return self.deleted_at is not None

    def editable(self) -> dict[str, Any]:
        return {
            "title": self.title,
            "body": self.body,
            "tags": list(self.tags),
            "metadata": dict(self.metadata),
        }

    def with_changes(self, change: DocumentIn, *, at: datetime) -> Document:
        return replace(
            self,
            title=change.title,
            body=change.body,
            tags=change.tags,
            metadata=change.metadata,
            version=self.version + 1,
            updated_at=at,
            deleted_at=None,
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "org": self.org,
            "title": self.title,
            "body": self.body,
            "tags": list(self.tags),
            "metadata": self.metadata,
            "version": self.version,
            "etag": self.etag,
            "owner": self.owner,
            "created_at": iso_z(self.created_at),
            "updated_at": iso_z(self.updated_at),
            "content": self.content,
            "visibility": self.visibility,
        }


def render(doc: Document) -> str:
    """The JSON representation as sent and cached: serialized once, compact."""
    return json.dumps(doc.to_json(), separators=(",", ":"), ensure_ascii=False)


def require_if_match(if_match: str | None, current: Document) -> None:
    """Writes to an existing document need a matching If-Match (428 / 412)."""
    if if_match is None:
        raise PreconditionRequired(
            "This write needs an If-Match header with the document's current ETag.",
            headers={"ETag": current.etag},
        )
    if not if_match_satisfied(if_match, current.etag):
        raise PreconditionFailed(
            "The document has changed since that ETag; read it again and retry.",
            headers={"ETag": current.etag},
        )


def parse_limit(raw: str | None, *, default: int = 20, maximum: int = 100) -> int:
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise BadRequest(f"limit must be an integer from 1 to {maximum}.") from None
    if not 1 <= value <= maximum:
        raise BadRequest(f"limit must be an integer from 1 to {maximum}.")
    return value


@dataclass(frozen=True)
class ListCursor:
    created_at: datetime
    id: str


@dataclass(frozen=True)
class Change:
    """Who changed a document and why: becomes its version, outbox and audit rows."""

    action: str  # create, replace, change, delete, restore, restore-version:N, ...
    actor: str
    request_id: str | None = None  # the server's own id of the request
    client_request_id: str | None = None  # the X-Request-Id the client sent, if any
    details: dict[str, Any] | None = None  # more for the audit row (a grant's user and role)


@dataclass(frozen=True)
class VersionRecord:
    version: int
    title: str
    body: Any
    tags: list[str]
    metadata: dict[str, Any]
    deleted: bool
    author: str
    action: str
    created_at: datetime
    content: dict[str, Any] | None = None
