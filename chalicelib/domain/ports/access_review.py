"""The access review's store: effective access of an org, and attestations."""

from __future__ import annotations

from typing import Protocol

from chalicelib.domain.access_review import Attestation, DocumentAccess, UserAccess
from chalicelib.domain.audit import AuditEntry


class AccessReviewStore(Protocol):
    """Each call is one tenant-scoped transaction of ``org``."""

    def documents(self, org: str, *, after: str, limit: int) -> list[DocumentAccess]:
        """Live documents with id > ``after``, by id, each with its grants."""

    def users(self, org: str, *, after: tuple[str, str], limit: int) -> list[UserAccess]:
        """(user, document) rows > ``after``, in that order (document '' first)."""

    def attest(self, org: str, attestation: Attestation, audit: AuditEntry) -> Attestation:
        """Record the attestation and its audit row in one transaction; the stored
        row comes back (``reviewed_at`` is the database's clock)."""
