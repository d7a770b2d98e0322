"""The audit trail's store."""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from chalicelib.domain.audit import (
    AuditEntry,
    AuditExportRecord,
    AuditFilter,
    AuditRecord,
    ChainBacklog,
    ChainHead,
    ChainRow,
)


class AuditTrail(Protocol):
    """An org's audit rows; each call is its own tenant-scoped transaction."""

    def record(self, org: str, entry: AuditEntry) -> None: ...

    def page(self, org: str, where: AuditFilter, limit: int) -> list[AuditRecord]:
        """Rows newest first (by chain position), the org's pending rows chained first."""

    def chain_pending(self, org: str, *, limit: int, wait: bool = False) -> int:
        """Link up to ``limit`` of the org's pending rows; how many (0 when another
        chainer holds the org and ``wait`` is false, -1 when the chain cannot be
        extended: its next position is taken)."""

    def chain_all(self, limit: int) -> dict[str, int]:
        """``chain_pending`` for every org with pending rows, skipping busy ones."""

    def backlog(self) -> ChainBacklog:
        """Pending rows across orgs (cross-org: a count and an age only)."""

    def chain(self, org: str, *, after_seq: int, limit: int) -> list[ChainRow]:
        """Rows as chained (pseudonyms, jsonb text), in chain order."""

    def head(self, org: str) -> ChainHead | None: ...

    def pseudonym(self, org: str, user: str) -> str | None:
        """The org's pseudonym of ``user`` (None: never audited, or erased); creates none."""

    def orgs(self) -> list[str]:
        """Every org with an audit chain (cross-org: names only)."""

    def between(self, org: str, start: datetime, end: datetime) -> list[ChainRow]:
        """Rows with ``start <= at < end``, in chain order."""

    def exported(self, org: str, period_start: datetime) -> AuditExportRecord | None: ...

    def record_export(self, record: AuditExportRecord) -> bool:
        """Remember an exported period; False if it was recorded already."""
