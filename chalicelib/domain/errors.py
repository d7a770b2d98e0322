"""The one exception family of the service.

Every failure a client can cause or observe is a ``DomainError``; the HTTP
layer maps each class to a status and a problem+json type once, in one table
(``chalicelib.api.problems``; the codes below are what it answers), and
adapters translate vendor errors into these at their edge
(``raise DependencyUnavailable(...) from exc``).

    DomainError
    ├── BadRequest              400  malformed JSON, bad query/page token
    ├── Unauthorized            401  missing / invalid / expired token
    ├── Forbidden               403  valid token, role not allowed
    │   └── FeatureDisabled          a feature flag is off for the caller's org or user
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
    """A failure the client can cause or observe; ``detail`` is for the client."""

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
    """Malformed JSON, a bad query parameter or page token."""


class Unauthorized(DomainError):
    """A missing, invalid or expired token."""


class Forbidden(DomainError):
    """A valid token whose roles do not allow the action."""


class FeatureDisabled(Forbidden):
    """A feature flag (domain/flags.py) is off for the caller's org or user."""

    def __init__(self, flag: str) -> None:
        super().__init__(f"The '{flag}' feature is not enabled for your organization.")
        self.flag = flag


class NotFound(DomainError):
    """Absent, deleted, another org's, or not readable by the caller."""


class Conflict(DomainError):
    """A failed JSON Patch ``test``, or the state does not allow the change."""


class Gone(DomainError):
    """Past a retention window (a restore, a pruned feed cursor)."""


class PreconditionFailed(DomainError):
    """A stale ``If-Match``, or ``If-None-Match: *`` on an existing document."""


class PayloadTooLarge(DomainError):
    """An inline body over the limit."""


class UnsupportedMediaType(DomainError):
    """A request body of a media type the route does not take."""


class ValidationFailed(DomainError):
    """Schema or patch validation, with ``errors``."""


class PreconditionRequired(DomainError):
    """A write without ``If-Match``."""


class TooManyRequests(DomainError):
    """The caller's token bucket is empty."""


class DependencyUnavailable(DomainError):
    """PostgreSQL (or another required backend) is down: retry after ``Retry-After``."""

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

    def __init__(
        self,
        detail: str = "Personal-data fields cannot be encrypted or decrypted right now; "
        "retry later or ask the operator to check the encryption keys.",
    ) -> None:
        super().__init__(detail, retry_after_s=5)
