"""The audit trail's hash chain, as a verifier sees it: pure, no I/O.

Each org's audit rows form one chain (migration 0009): row ``n`` carries
``hash = sha256(hash of row n-1 || canonical(row n))`` (the first row
chains from the empty string), and the org's chain head records the last
position and hash.  The database computes it: every insert path leaves its
row pending, and the chainer links pending rows in the order it finds them
committed, shortly after (migration 0016, docs/adr/0011); this module
computes the same bytes independently, so a verifier does not have to trust
a function the database owner could replace.  A modified row breaks its own
hash; a deleted row leaves a gap in the positions (or, at the end, a head that no row reaches).

The canonical row is the concatenation of each field as ``<length>:<text>``
(``~`` for NULL), in the order of ``CANONICAL_FIELDS``; ``at`` is in
microseconds since the epoch and ``details`` is PostgreSQL's own text of
the jsonb value, which is deterministic for a given value.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from chalicelib.domain.timestamps import iso_z

CANONICAL_FIELDS = (
    "org", "chain_seq", "id", "at", "actor", "action", "doc_id", "version", "prev_version",
    "request_id", "details",
)  # fmt: skip
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class ChainRow:
    """One audit row as chained: ``actor`` is the pseudonym, ``details`` the jsonb text."""

    org: str
    chain_seq: int
    id: int
    at: datetime
    actor: str | None
    action: str
    doc_id: str | None
    version: int | None
    prev_version: int | None
    request_id: str | None
    details: str
    hash: bytes


@dataclass(frozen=True)
class ChainHead:
    org: str
    last_seq: int
    last_hash: bytes


@dataclass(frozen=True)
class ChainBacklog:
    """Rows written but not chained yet, across orgs: how many, and the oldest's age."""

    lag_s: float
    pending: int


@dataclass(frozen=True)
class ChainReport:
    """The outcome of verifying one org's chain."""

    org: str
    rows: int
    ok: bool
    last_seq: int = 0
    last_hash: str = ""
    broken_at: int | None = None  # the chain position where verification failed
    row_id: int | None = None  # that row's id, when a row is there
    reason: str | None = None

    def as_dict(self) -> dict[str, object]:
        return {k: v for k, v in self.__dict__.items() if v is not None}


def _field(value: str | None) -> str:
    return "~" if value is None else f"{len(value)}:{value}"


def _micros(at: datetime) -> int:
    return (at - _EPOCH) // timedelta(microseconds=1)


def _text(value: int | None) -> str | None:
    return None if value is None else str(value)


def canonical(row: ChainRow) -> bytes:
    parts = (
        row.org, str(row.chain_seq), str(row.id), str(_micros(row.at)), row.actor, row.action,
        row.doc_id, _text(row.version), _text(row.prev_version), row.request_id, row.details,
    )  # fmt: skip
    return "".join(_field(p) for p in parts).encode("utf-8")


def chain_hash(previous: bytes, row: ChainRow) -> bytes:
    return hashlib.sha256(previous + canonical(row)).digest()


class ChainVerifier:
    """Walks one org's rows in chain order, page by page (``feed``), then ``finish``."""

    def __init__(self, org: str, anchors: dict[int, bytes] | None = None) -> None:
        self.org = org
        # hashes recorded outside the database (the exported days' manifests, under
        # Object Lock): a chain rewritten consistently from some row on still differs there
        self.anchors = anchors or {}
        self.rows = 0
        self._seq = 0
        self._hash = b""
        self._report: ChainReport | None = None

    @property
    def position(self) -> int:
        return self._seq

    @property
    def failed(self) -> bool:
        return self._report is not None

    def _fail(self, seq: int, row_id: int | None, reason: str) -> None:
        self._report = ChainReport(
            self.org, self.rows, False, self._seq, self._hash.hex(), seq, row_id, reason
        )

    def feed(self, rows: Iterable[ChainRow]) -> bool:
        """Check the next rows; False once the chain is broken (stop feeding)."""
        for row in rows:
            if self._report is not None:
                return False
            expected = self._seq + 1
            if row.chain_seq != expected:
                self._fail(expected, row.id, f"row {expected} is missing (next is {row.chain_seq})")
                return False
            digest = chain_hash(self._hash, row)
            if digest != row.hash:
                self._fail(expected, row.id, "the row does not match its hash (modified)")
                return False
            anchor = self.anchors.get(expected)
            if anchor is not None and anchor != digest:
                self._fail(
                    expected, row.id, "the row differs from the exported manifest (rewritten)"
                )
                return False
            self._seq, self._hash = expected, digest
            self.rows += 1
        return self._report is None

    def finish(self, head: ChainHead | None) -> ChainReport:
        beyond = [seq for seq in self.anchors if seq > self._seq]
        if self._report is None and beyond:
            self._fail(min(beyond), None, "rows the exported manifests hold are missing")
        if self._report is None:
            last = head.last_seq if head else 0
            if last != self._seq:
                self._fail(self._seq + 1, None, f"the chain head is at {last}: rows are missing")
            elif head is not None and head.last_hash != self._hash:
                self._fail(self._seq, None, "the chain head's hash does not match the last row")
        if self._report is not None:
            return self._report
        return ChainReport(self.org, self.rows, True, self._seq, self._hash.hex())


@dataclass(frozen=True)
class AuditEntry:
    """One audit row to record.  ``actor`` is the user id: the database stores
    the org's pseudonym of it instead (migration 0009)."""

    action: str
    actor: str
    doc_id: str | None = None
    version: int | None = None
    prev_version: int | None = None
    request_id: str | None = None
    details: dict[str, Any] | None = None


@dataclass(frozen=True)
class AuditRecord:
    """One audit row as read back: ``actor`` is the user id while the user's
    pseudonym mapping exists, the pseudonym once they were erased."""

    seq: int
    at: datetime
    actor: str | None
    pseudonymous: bool
    action: str
    doc_id: str | None
    version: int | None
    prev_version: int | None
    request_id: str | None
    details: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        return {
            "seq": self.seq, "at": iso_z(self.at), "actor": self.actor,
            "pseudonymous": self.pseudonymous, "action": self.action, "document": self.doc_id,
            "version": self.version, "prev_version": self.prev_version,
            "request_id": self.request_id, "details": self.details,
        }  # fmt: skip


@dataclass(frozen=True)
class AuditFilter:
    doc_id: str | None = None
    user: str | None = None
    since: datetime | None = None
    before_seq: int | None = None  # keyset: newest first, rows below this position


@dataclass(frozen=True)
class AuditExportRecord:
    """What the scheduled export wrote for one org and period."""

    org: str
    period_start: datetime
    period_end: datetime
    object_key: str
    sha256: str
    rows: int
    first_seq: int | None
    last_seq: int | None
    last_hash: bytes | None
