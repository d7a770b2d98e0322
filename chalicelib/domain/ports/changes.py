"""The changes feed of a transaction's org."""

from __future__ import annotations

from typing import Protocol

from chalicelib.domain.changes import FeedCursor, FeedRow
from chalicelib.domain.viewer import Viewer


class ChangeFeed(Protocol):
    """The changes feed of the transaction's org."""

    def changes(
        self, since: FeedCursor | None, limit: int, *, viewer: Viewer | None = None
    ) -> tuple[list[FeedRow], FeedCursor]:
        """Rows after ``since`` (None: from now on) and the cursor to resume from;
        with ``viewer``, only rows of documents that viewer may read now."""
