"""The one exception family of the service.

Every failure a client can cause or observe is a ``DomainError``; the HTTP
layer maps each class to a problem+json response once (``chalicelib.api.http``),
and adapters translate vendor errors into these at their edge
(``raise DependencyUnavailable(...) from exc``).

    DomainError
    ├── BadRequest              400  malformed JSON, bad query/page token
    ├── Unauthorized            401  missing / invalid / expired token
    ├── Forbidden               403  valid token, role not allowed
    ├── NotFound                404  absent, deleted, or another org's
    ├── Conflict                409  failed JSON Patch ``test``; state conflict
    ├── Gone                    410  restore after the retention window
    ├── PreconditionFailed      412  stale If-Match, If-None-Match: * on existing
    ├── PayloadTooLarge         413  inline body over the limit
    ├── UnsupportedMediaType    415
    ├── ValidationFailed        422  schema/patch validation, with ``errors``
    ├── PreconditionRequired    428  write without If-Match
    ├── TooManyRequests         429  the caller's token bucket is empty
    └── DependencyUnavailable   503  PostgreSQL (or another required backend) down
        ├── TransientDatabaseError   nothing committed: retried with backoff first
        ├── SearchUnavailable        the search index is unreachable or refused a request
        └── KeyUnavailable           a personal-data encryption key is missing or wrong
"""

from __future__ import annotations

from typing import Any


class DomainError(Exception):
    status: int = 500
    slug: str = "internal"
    title: str = "Internal error"

    def __init__(
        self,
        detail: str,
        *,
        errors: list[dict[str, Any]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        self.errors = errors
        self.headers = headers or {}


class BadRequest(DomainError):
    status, slug, title = 400, "bad-request", "Bad request"


class Unauthorized(DomainError):
    status, slug, title = 401, "unauthorized", "Unauthorized"


class Forbidden(DomainError):
    status, slug, title = 403, "forbidden", "Forbidden"


class NotFound(DomainError):
    status, slug, title = 404, "not-found", "Not found"


class Conflict(DomainError):
    status, slug, title = 409, "conflict", "Conflict"


class Gone(DomainError):
    status, slug, title = 410, "gone", "Gone"


class PreconditionFailed(DomainError):
    status, slug, title = 412, "precondition-failed", "Precondition failed"


class PayloadTooLarge(DomainError):
    status, slug, title = 413, "payload-too-large", "Payload too large"


class UnsupportedMediaType(DomainError):
    status, slug, title = 415, "unsupported-media-type", "Unsupported media type"


class ValidationFailed(DomainError):
    status, slug, title = 422, "validation-failed", "Validation failed"


class PreconditionRequired(DomainError):
    status, slug, title = 428, "precondition-required", "Precondition required"


class TooManyRequests(DomainError):
    status, slug, title = 429, "too-many-requests", "Too many requests"


class DependencyUnavailable(DomainError):
    status, slug, title = 503, "dependency-unavailable", "Service temporarily unavailable"

    def __init__(self, detail: str, *, retry_after_s: int = 1) -> None:
        super().__init__(detail, headers={"Retry-After": str(retry_after_s)})


class TransientDatabaseError(DependencyUnavailable):
    """Nothing was committed (no connection, lost before COMMIT, serialization
    failure, deadlock): the whole use case may safely run again."""


class SearchUnavailable(DependencyUnavailable):
    """The search index could not be reached or refused the request as a whole."""

    def __init__(self, detail: str = "Search is temporarily unavailable; retry shortly.") -> None:
        super().__init__(detail, retry_after_s=5)


# --- personal data ------------------------------------------------------
class KeyUnavailable(DependencyUnavailable):
    """An encryption key of personal-data fields is missing, unreachable or does
    not open a stored value: a 503 that names no value and no key material."""

    slug, title = "encryption-key-unavailable", "Encryption key unavailable"

    def __init__(
        self,
        detail: str = "Personal-data fields cannot be encrypted or decrypted right now; "
        "retry later or ask the operator to check the encryption keys.",
    ) -> None:
        super().__init__(detail, retry_after_s=5)
