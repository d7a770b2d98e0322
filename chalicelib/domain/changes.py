"""The changes feed's cursor and the sealer that hides it.  Pure; no I/O.

Feed cursors are sealed (AES-GCM, bound to the org) so they reveal no global
counter (docs/search.md, "Tenant independence").
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from datetime import datetime

from chalicelib.domain.errors import BadRequest
from chalicelib.domain.sealed import Sealer

FEED_CURSOR_PURPOSE = "changes-feed-cursor"
_BAD_CURSOR = (
    "since must be a cursor from a previous response ('next', or a change's 'seq'), '0' or 'now'."
)


def feed_sealer(secret: str) -> Sealer:
    return Sealer(secret, FEED_CURSOR_PURPOSE)


@dataclass(frozen=True, order=True)
class FeedCursor:
    """A position in an org's changes feed: rows are read in (txid, seq) order,
    and only rows of transactions older than every running one (so no row can
    ever appear behind a cursor that was handed out).

    ``txid`` and ``seq`` are global counters: a client sees them only sealed
    (AES-GCM, bound to its org), never in clear, so the gaps between its own
    changes cannot count other orgs' writes."""

    txid: int
    seq: int

    def encode(self, org: str, sealer: Sealer) -> str:
        return sealer.seal(struct.pack(">QQ", self.txid, self.seq), org)

    @classmethod
    def parse(cls, raw: str | None, org: str, sealer: Sealer) -> FeedCursor:
        """Absent, empty or "0": from the beginning; ``"now"`` is handled by the
        caller.  Anything not sealed by this server for this org is a 400."""
        if raw is None or raw in ("", "0"):
            return cls(0, 0)
        try:
            txid, seq = struct.unpack(">QQ", sealer.unseal(raw, org))
        except (ValueError, struct.error):
            raise BadRequest(_BAD_CURSOR) from None
        return cls(txid, seq)


@dataclass(frozen=True)
class FeedRow:
    """One change in an org's feed."""

    seq: int
    txid: int
    doc_id: str
    version: int
    op: str
    created_at: datetime
