"""Whose reads a query filters (its own module: ports and search both need it)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Viewer:
    """The caller's id, and whether it is an admin (who reads every document of
    its org): what a database or index query needs to apply domain/access.py."""

    user: str
    admin: bool = False
