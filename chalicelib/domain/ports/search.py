"""The full-text index."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Protocol

from chalicelib.domain.search_index import ItemResult, SearchDocument


class SearchIndex(Protocol):
    """The full-text index: versioned indexes behind one alias.

    Writes are external-versioned (the document version), so a replayed or
    reordered write never moves a document backwards.  An unreachable index
    raises ``SearchUnavailable``."""

    @property
    def alias(self) -> str: ...

    def ping(self) -> bool: ...

    def live_index(self) -> str | None:
        """The index the alias points at (None before the first index exists)."""

    def schema_version(self, name: str) -> int:
        """The mapping schema an index was created with."""

    def next_index_name(self) -> str: ...

    def create_index(self, name: str) -> None: ...

    def swap_alias(self, old: str | None, new: str) -> None:
        """Point the alias at ``new`` in one atomic step."""

    def drop_index(self, name: str) -> None: ...

    def refresh(self, index: str | None = None) -> None: ...

    def write(self, docs: Iterable[SearchDocument], indexes: list[str]) -> list[ItemResult]:
        """Index or delete each document in each index; per-item results."""

    def search(self, body: dict[str, Any]) -> dict[str, Any]:
        """One page of hits for a query built by ``domain.search.build_query``."""
