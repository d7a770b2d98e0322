"""Retries for transient database failures: exponential backoff with full jitter.

Only errors that prove nothing was committed are retried (the connection could
not be had, or was lost before COMMIT; serialization failures; deadlocks) —
see ``TransientDatabaseError`` in adapters/postgres/uow.py.  Anything else, and a
transient error that outlives the attempts, reaches the client as 503 with
``Retry-After``; a half-applied write is impossible because each write is a
single transaction.
"""

from __future__ import annotations

import functools
import random
import time
from collections.abc import Callable
from typing import ParamSpec, TypeVar

from chalicelib.domain.errors import TransientDatabaseError
from chalicelib.observability import count

P = ParamSpec("P")
R = TypeVar("R")


def full_jitter(attempt: int, base_s: float, cap_s: float) -> float:
    """AWS's "full jitter": uniform in [0, min(cap, base * 2**attempt)]."""
    return random.uniform(0, min(cap_s, base_s * 2**attempt))  # noqa: S311 - not crypto


def retry_transient(
    attempts: int = 3,
    base_s: float = 0.05,
    cap_s: float = 0.5,
    sleep: Callable[[float], None] = time.sleep,
) -> Callable[[Callable[P, R]], Callable[P, R]]:
    def wrap(fn: Callable[P, R]) -> Callable[P, R]:
        @functools.wraps(fn)
        def run(*args: P.args, **kwargs: P.kwargs) -> R:
            for attempt in range(attempts):
                try:
                    return fn(*args, **kwargs)
                except TransientDatabaseError:
                    if attempt == attempts - 1:
                        raise
                    count("DatabaseRetries")
                    sleep(full_jitter(attempt, base_s, cap_s))
            raise AssertionError("unreachable")  # pragma: no cover

        return run

    return wrap
