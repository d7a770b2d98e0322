"""Outbox rows as the search sync claims them, and the outbox's figures."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any


@dataclass(frozen=True)
class OutboxRow:
    seq: int
    org: str
    doc_id: str
    version: int
    op: str
    attempts: int
    created_at: datetime

    @property
    def key(self) -> tuple[str, str]:
        return (self.org, self.doc_id)


DocumentState = dict[str, Any]
"""A document's committed row plus its ``content_text``: what ``search_document`` indexes."""


@dataclass(frozen=True)
class OutboxStats:
    lag_s: float  # since the oldest unsynced row committed
    backlog: int
    dead_letters: int

    def as_dict(self) -> dict[str, float | int]:
        return {"lag_s": self.lag_s, "backlog": self.backlog, "dead_letters": self.dead_letters}
