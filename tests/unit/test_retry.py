from __future__ import annotations

import pytest

from chalicelib.domain.errors import DependencyUnavailable, TransientDatabaseError, ValidationFailed
from chalicelib.service_layer.retry import full_jitter, retry_transient


def test_transient_errors_are_retried_with_bounded_jittered_sleeps() -> None:
    sleeps: list[float] = []
    calls = {"n": 0}

    @retry_transient(attempts=4, base_s=0.1, cap_s=0.3, sleep=sleeps.append)
    def flaky() -> str:
        calls["n"] += 1
        if calls["n"] < 4:
            raise TransientDatabaseError("lost before commit")
        return "ok"

    assert flaky() == "ok"
    assert calls["n"] == 4 and len(sleeps) == 3
    assert all(0 <= s <= cap for s, cap in zip(sleeps, [0.1, 0.2, 0.3], strict=True))


def test_gives_up_with_503_and_never_retries_other_errors() -> None:
    calls = {"n": 0}

    @retry_transient(attempts=3, sleep=lambda _: None)
    def down() -> None:
        calls["n"] += 1
        raise TransientDatabaseError("still down")

    with pytest.raises(DependencyUnavailable) as err:
        down()
    assert (
        calls["n"] == 3
        and isinstance(err.value, DependencyUnavailable)
        and "Retry-After" in err.value.headers
    )

    @retry_transient(attempts=3, sleep=lambda _: None)
    def invalid() -> None:
        calls["n"] += 1
        raise ValidationFailed("bad")

    with pytest.raises(ValidationFailed):
        invalid()
    assert calls["n"] == 4


def test_full_jitter_stays_within_the_exponential_cap() -> None:
    for attempt in range(8):
        for _ in range(50):
            assert 0 <= full_jitter(attempt, 0.05, 1.0) <= min(1.0, 0.05 * 2**attempt)
