"""The personal-data store (export and erasure) and the export jobs."""

from __future__ import annotations

from typing import Any, Protocol

from chalicelib.domain.model import Change, Document
from chalicelib.domain.personal_data import ErasurePlan, ExportJob


class ExportJobs(Protocol):
    def create(self, org: str, job_id: str, user: str, request_id: str | None) -> ExportJob: ...

    def get(self, org: str, job_id: str) -> ExportJob | None: ...

    def due(self, limit: int) -> list[tuple[str, str]]:
        """(org, id) of pending jobs of every org, oldest first (ids only)."""

    def finish(self, org: str, job_id: str, *, state: str, key: str | None, error: str | None
               ) -> None: ...  # fmt: skip


class PersonalData(Protocol):
    """What the store holds about one user of an org (export and erasure)."""

    def known_user(self, org: str, user: str) -> bool:
        """Whether ``user`` acted in, or owns a document of, ``org``."""

    def collect(self, org: str, user: str) -> dict[str, Any]:
        """The user's documents, the grants involving them, their audit entries and
        their consent records."""

    def granted_documents(self, org: str, user: str) -> list[str]:
        """Ids of the documents of ``org`` on which ``user`` holds a grant."""

    def erase(self, org: str, plan: ErasurePlan, change: Change) -> tuple[str, list[Document]]:
        """In one transaction: reassign or delete the user's documents (with their
        version, outbox and audit rows), scrub the PII fields, replace the user id
        by its pseudonym where rows keep it, audit the erasure (``change``) and
        delete the pseudonym mapping.  Returns the pseudonym and the changed documents."""
