"""The grants repository: a document's grants inside a transaction."""

from __future__ import annotations

from typing import Protocol

from chalicelib.domain.access import Grant


class GrantRepository(Protocol):
    """A document's grants, in the transaction's org."""

    def list(self, doc_id: str) -> list[Grant]: ...

    def put(self, doc_id: str, user: str, role: str, granted_by: str) -> None: ...

    def delete(self, doc_id: str, user: str) -> bool:
        """False when there was no such grant."""

    def clear(self, doc_id: str) -> None:
        """Every grant of the document (its id starts a new life)."""
