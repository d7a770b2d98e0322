"""Personal-data export jobs and erasure plans."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class ExportJob:
    org: str
    id: str
    requested_by: str
    state: str  # pending | ready | failed
    object_key: str | None
    error: str | None
    created_at: datetime
    finished_at: datetime | None


@dataclass(frozen=True)
class ErasurePlan:
    user: str
    reassign_to: str | None  # None: the user's documents are deleted
    pii_fields: tuple[str, ...]
