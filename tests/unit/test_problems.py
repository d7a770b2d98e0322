"""The one table from domain error to HTTP status, problem type and title."""

from __future__ import annotations

import pytest

from chalicelib.api.problems import PROBLEMS, error_frame_of, problem_of
from chalicelib.domain import errors
from chalicelib.domain.errors import DomainError


@pytest.mark.parametrize(
    ("cls", "status", "slug"),
    [
        (errors.BadRequest, 400, "bad-request"),
        (errors.Unauthorized, 401, "unauthorized"),
        (errors.Forbidden, 403, "forbidden"),
        (errors.NotFound, 404, "not-found"),
        (errors.Conflict, 409, "conflict"),
        (errors.Gone, 410, "gone"),
        (errors.PreconditionFailed, 412, "precondition-failed"),
        (errors.PayloadTooLarge, 413, "payload-too-large"),
        (errors.UnsupportedMediaType, 415, "unsupported-media-type"),
        (errors.ValidationFailed, 422, "validation-failed"),
        (errors.PreconditionRequired, 428, "precondition-required"),
        (errors.TooManyRequests, 429, "too-many-requests"),
        (errors.DependencyUnavailable, 503, "dependency-unavailable"),
        (errors.TransientDatabaseError, 503, "dependency-unavailable"),
        (errors.SearchUnavailable, 503, "dependency-unavailable"),
        (errors.KeyUnavailable, 503, "encryption-key-unavailable"),
        (errors.FeatureDisabled, 403, "feature-disabled"),
    ],
)
def test_each_error_class_maps_to_its_status_and_type(cls, status, slug) -> None:
    exc = cls() if cls in (errors.SearchUnavailable, errors.KeyUnavailable) else cls("x")
    assert (problem_of(exc).status, problem_of(exc).slug) == (status, slug)


def test_every_domain_error_class_has_a_row_or_an_ancestor_with_one() -> None:
    """The domain carries no HTTP: its classes hold no status of their own."""
    classes = [v for v in vars(errors).values() if isinstance(v, type)]
    for cls in classes:
        if issubclass(cls, DomainError):
            assert not hasattr(cls, "status"), cls
            assert any(c in PROBLEMS for c in cls.__mro__), cls


def test_an_unlisted_subclass_answers_as_its_ancestor() -> None:
    class Odd(errors.Conflict):
        pass

    assert problem_of(Odd("x")).status == 409
    assert problem_of(DomainError("x")).status == 500


def test_a_realtime_error_frame_carries_the_same_status_and_title() -> None:
    frame = error_frame_of(errors.DependencyUnavailable("registry down"))
    assert frame == {
        "type": "error",
        "status": 503,
        "title": "Service temporarily unavailable",
        "detail": "registry down",
    }
