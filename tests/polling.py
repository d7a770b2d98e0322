"""Waiting for eventual consistency: one loop, always with a deadline.

A wait, not a timing assertion: ``poll`` returns the last value it read
whether or not the condition came true in time, and the caller asserts on it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def poll(
    read: Callable[[], T],
    until: Callable[[T], object] = bool,
    *,
    timeout_s: float = 15.0,
    interval_s: float = 0.1,
) -> T:
    """``read()`` again until ``until(value)`` holds or ``timeout_s`` have passed."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = read()
        if until(value) or time.monotonic() > deadline:
            return value
        time.sleep(interval_s)
