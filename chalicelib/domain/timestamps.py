"""How timestamps leave the service: RFC 3339 in UTC, with a ``Z``."""

from __future__ import annotations

from datetime import datetime
from typing import Literal


def iso_z(value: datetime, timespec: Literal["seconds", "milliseconds"] = "milliseconds") -> str:
    """``2026-11-01T12:00:00.000Z`` (an aware UTC datetime; others keep their offset)."""
    return value.isoformat(timespec=timespec).replace("+00:00", "Z")
