"""The one table from domain error to HTTP: each error class's status, problem
type and title (RFC 9457 problem+json), used by every answer that reports an error.

Real-time error frames carry the same status and title (``error_frame_of``).
A class not in the table answers as its nearest ancestor that is
(``TransientDatabaseError`` and ``SearchUnavailable`` as
``DependencyUnavailable``); ``DomainError`` itself is a 500.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from chalicelib.domain.errors import (
    BadRequest,
    Conflict,
    DependencyUnavailable,
    DomainError,
    FeatureDisabled,
    Forbidden,
    Gone,
    KeyUnavailable,
    NotFound,
    PayloadTooLarge,
    PreconditionFailed,
    PreconditionRequired,
    TooManyRequests,
    Unauthorized,
    UnsupportedMediaType,
    ValidationFailed,
)
from chalicelib.domain.realtime import error_frame


@dataclass(frozen=True)
class Problem:
    status: int
    slug: str  # the problem type is "/problems/{slug}"
    title: str


PROBLEMS: dict[type[DomainError], Problem] = {
    DomainError: Problem(500, "internal", "Internal error"),
    BadRequest: Problem(400, "bad-request", "Bad request"),
    Unauthorized: Problem(401, "unauthorized", "Unauthorized"),
    Forbidden: Problem(403, "forbidden", "Forbidden"),
    FeatureDisabled: Problem(403, "feature-disabled", "Feature not enabled"),
    NotFound: Problem(404, "not-found", "Not found"),
    Conflict: Problem(409, "conflict", "Conflict"),
    Gone: Problem(410, "gone", "Gone"),
    PreconditionFailed: Problem(412, "precondition-failed", "Precondition failed"),
    PayloadTooLarge: Problem(413, "payload-too-large", "Payload too large"),
    UnsupportedMediaType: Problem(415, "unsupported-media-type", "Unsupported media type"),
    ValidationFailed: Problem(422, "validation-failed", "Validation failed"),
    PreconditionRequired: Problem(428, "precondition-required", "Precondition required"),
    TooManyRequests: Problem(429, "too-many-requests", "Too many requests"),
    DependencyUnavailable: Problem(
        503, "dependency-unavailable", "Service temporarily unavailable"
    ),
    KeyUnavailable: Problem(503, "encryption-key-unavailable", "Encryption key unavailable"),
}


def problem_of(exc: DomainError) -> Problem:
    """``exc``'s row of the table (its class's, else its nearest ancestor's)."""
    for cls in type(exc).__mro__:
        found = PROBLEMS.get(cls)
        if found is not None:
            return found
    return PROBLEMS[DomainError]


def error_frame_of(exc: DomainError) -> dict[str, Any]:
    """``exc`` as a real-time error frame (the registry or the database is out)."""
    kind = problem_of(exc)
    return error_frame(kind.status, kind.title, exc.detail)
