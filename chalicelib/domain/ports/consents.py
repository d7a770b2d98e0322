"""The consent records store (service_layer/consents.py)."""

from __future__ import annotations

from typing import Protocol

from chalicelib.domain.consents import ConsentChange, ConsentState
from chalicelib.domain.model import Change


class ConsentRecords(Protocol):
    """Each user's append-only consent history, in one org."""

    def current(self, org: str, user: str) -> list[ConsentState]:
        """The newest record of each purpose the user has one of (one statement)."""

    def record(self, org: str, user: str, consents: ConsentChange, change: Change
               ) -> list[ConsentState]:  # fmt: skip
        """Append one record per purpose and the audit row, in one transaction; the
        current state afterwards."""
