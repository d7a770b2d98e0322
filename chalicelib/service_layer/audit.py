"""Audit use cases: read the trail (admins), verify its hash chain, export closed periods.

Recording happens where the change happens (the document write statement,
grant changes, erasure, export jobs); the row is written pending and the
database's chainer links it shortly after the commit (migration 0016,
docs/adr/0011-audit-chain-off-the-write-path.md): ``chain`` runs it, from the
local worker, the search sweep and nudges in AWS, and before every verify,
export and page read.  Verification recomputes each org's chain here, outside
the database (``domain.audit``).  The scheduled export writes each org's
rows of a closed period (a UTC day) as gzipped JSON Lines to a bucket under
Object Lock, with a manifest of the object's SHA-256 and the chain head the
period reached; a period is exported once (``audit_exports`` remembers it,
and an object already in the bucket is not written again).
"""

from __future__ import annotations

import gzip
import hashlib
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

from chalicelib.domain.audit import (
    AuditExportRecord,
    AuditFilter,
    ChainReport,
    ChainRow,
    ChainVerifier,
)
from chalicelib.domain.errors import ValidationFailed
from chalicelib.domain.pagination import decode_token, encode_token, page_scope
from chalicelib.domain.ports.archive import ArchiveStore
from chalicelib.domain.ports.audit import AuditTrail
from chalicelib.domain.principal import Principal
from chalicelib.domain.timestamps import iso_z
from chalicelib.domain.user_id import validate_user_id
from chalicelib.observability import count, logger, milliseconds
from chalicelib.service_layer.retry import retry_transient
from chalicelib.settings_groups import AuditSettings

VERIFY_PAGE = 2000
CHAIN_BATCH = 5000  # rows per org and chainer call (a pass of the worker, a verify step)
_DAY = timedelta(days=1)


def parse_since(raw: str | None) -> datetime | None:
    """``since``: an RFC 3339 timestamp (a date alone means its midnight UTC)."""
    if raw is None or raw == "":
        return None
    try:
        value = datetime.fromisoformat(raw.replace("Z", "+00:00").replace(" ", "+"))
    except ValueError:
        raise ValidationFailed(
            "since must be an RFC 3339 timestamp, e.g. 2026-11-01T00:00:00Z.",
            errors=[{"loc": ["query", "since"], "msg": "invalid timestamp", "type": "value_error"}],
        ) from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def export_key(prefix: str, org: str, day: datetime, name: str) -> str:
    """``<prefix>/<org, quoted>/<yyyy>/<mm>/<dd>/<name>``: one org per prefix (the org
    comes from a token and may hold any character, ``/`` included)."""
    return f"{prefix.strip('/')}/{quote(org, safe='')}/{day:%Y/%m/%d}/{name}"


def _row_json(row: ChainRow) -> dict[str, Any]:
    return {
        "org": row.org, "seq": row.chain_seq, "id": row.id, "at": iso_z(row.at),
        "at_us": (row.at - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1),
        "actor": row.actor, "action": row.action, "document": row.doc_id,
        "version": row.version, "prev_version": row.prev_version,
        "request_id": row.request_id, "details": row.details, "hash": row.hash.hex(),
    }  # fmt: skip


class AuditChainer:
    """Links pending audit rows into their orgs' chains (migration 0016,
    docs/adr/0011): the local worker, the search sweep and nudges run it, and
    ``AuditService`` before it verifies, exports or reads a page."""

    def __init__(self, trail: AuditTrail) -> None:
        self.trail = trail

    def chain(self, org: str | None = None, *, wait: bool = False) -> int:
        """Link the pending rows of ``org`` (every org's when None, skipping orgs
        another chainer holds unless ``wait``), until none is left; the number
        linked.  An org whose chain cannot be extended (its next position is
        taken: a row forged past the trigger) is logged and counted
        (``AuditChainBroken``); its verify says where."""
        total = 0
        while True:
            if org is not None:
                done = {org: self.trail.chain_pending(org, limit=CHAIN_BATCH, wait=wait)}
            else:
                done = self.trail.chain_all(CHAIN_BATCH)
            for name, n in done.items():
                if n < 0:
                    logger.error("audit chain cannot be extended", org=name)
                    count("AuditChainBroken")
            total += sum(n for n in done.values() if n > 0)
            if not any(n >= CHAIN_BATCH for n in done.values()):
                return total

    def lag(self) -> dict[str, float | int]:
        """The age of the oldest pending row (``AuditChainLag``) and the pending count."""
        backlog = self.trail.backlog()
        milliseconds("AuditChainLag", backlog.lag_s * 1000)
        return {"audit_chain_lag_s": round(backlog.lag_s, 3), "audit_pending": backlog.pending}


class AuditService:
    def __init__(
        self,
        trail: AuditTrail,
        *,
        page_secret: str,
        settings: AuditSettings = AuditSettings(),
        archive: Callable[[], ArchiveStore] | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.trail = trail
        self.chainer = AuditChainer(trail)
        self.page_secret = page_secret
        self._archive = archive
        self.prefix = settings.export_prefix
        self.export_days = settings.export_days
        self._clock = clock or (lambda: datetime.now(UTC))

    # ------------------------------------------------------------------ reading
    @retry_transient()
    def page(
        self, who: Principal, *, document: str | None, user: str | None, since: str | None,
        page_token: str | None, limit: int,
    ) -> dict[str, Any]:  # fmt: skip
        """GET /audit: the caller's org only, admins only, newest first."""
        who.require("admin")
        if user:  # (empty: no filter)
            validate_user_id(user, ["query", "user"])
        doc_id, user, after = document or None, user or None, parse_since(since)
        scope = page_scope(who.org, "GET /audit", document=doc_id, user=user, since=after)
        cursor = decode_token(page_token, self.page_secret, scope)
        before = cursor.get("s") if cursor else None
        where = AuditFilter(
            doc_id=doc_id,
            user=user,
            since=after,
            before_seq=before if isinstance(before, int) else None,
        )
        rows = self.trail.page(who.org, where, limit + 1)
        token = None
        if len(rows) > limit:
            rows = rows[:limit]
            token = encode_token({"s": rows[-1].seq}, self.page_secret, scope)
        return {"items": [r.to_json() for r in rows], "next_page_token": token}

    def pseudonym(self, org: str, user: str) -> dict[str, Any] | None:
        """What the Athena queries take for ``user`` of ``org`` (docs/compliance.md): the
        org's key in the exported objects' names and the user's pseudonym; None if the
        user has no pseudonym (never audited, or erased)."""
        validate_user_id(user, ["user"])
        found = self.trail.pseudonym(org, user)
        if found is None:
            return None
        return {"org": org, "org_key": quote(org, safe=""), "user": user, "pseudonym": found}

    # ---------------------------------------------------------------- chaining
    def chain(self, org: str | None = None, *, wait: bool = False) -> int:
        return self.chainer.chain(org, wait=wait)

    def chain_lag(self) -> dict[str, float | int]:
        return self.chainer.lag()

    # ------------------------------------------------------------- verification
    def verify(self, org: str | None = None, *, against_exports: bool = False) -> list[ChainReport]:
        """Recompute each org's chain (or one org's); a report per org.  With
        ``against_exports``, also compare it with the exported days' manifests.
        Pending rows are chained first, so every committed row is covered."""
        if org is None:
            self.chain()
        orgs = [org] if org else self.trail.orgs()
        return [self.verify_org(o, against_exports=against_exports) for o in orgs]

    def verify_org(self, org: str, *, against_exports: bool = False) -> ChainReport:
        self.chain(org, wait=True)
        anchors = self.exported_anchors(org) if against_exports else None
        verifier = ChainVerifier(org, anchors)
        while True:
            rows = self.trail.chain(org, after_seq=verifier.position, limit=VERIFY_PAGE)
            if not rows or not verifier.feed(rows):
                break
        return verifier.finish(self.trail.head(org))

    def exported_anchors(self, org: str) -> dict[int, bytes]:
        """Chain position -> hash, from every manifest of ``org`` in the audit bucket."""
        if self._archive is None:
            raise RuntimeError("no audit archive is configured")
        archive = self._archive()
        anchors: dict[int, bytes] = {}
        prefix = f"{self.prefix.strip('/')}/{quote(org, safe='')}/"
        for key in archive.keys(prefix):
            if not key.endswith("/manifest.json"):
                continue
            manifest = json.loads(archive.read(key) or b"{}")
            if manifest.get("org") == org and manifest.get("last_seq"):
                anchors[int(manifest["last_seq"])] = bytes.fromhex(manifest["last_hash"])
        return anchors

    # ------------------------------------------------------------------ export
    def export_closed_periods(self, *, days: int | None = None) -> list[dict[str, Any]]:
        """Export the last ``days`` (by default the configured number of) closed UTC
        days of every org (those not exported yet); returns what was written."""
        days = self.export_days if days is None else days
        today = self._clock().astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
        written: list[dict[str, Any]] = []
        self.chain()  # a period's rows are all chained before it is written
        for org in self.trail.orgs():
            for back in range(days, 0, -1):
                result = self.export_period(org, today - back * _DAY)
                if result is not None:
                    written.append(result)
        return written

    def export_period(self, org: str, start: datetime) -> dict[str, Any] | None:
        """One org's rows of the UTC day starting at ``start`` (closed: before today),
        unless that period was exported already.  None when nothing was written."""
        if start + _DAY > self._clock():
            raise ValueError("only a closed period can be exported")
        if self.trail.exported(org, start) is not None:
            return None
        if self._archive is None:
            raise RuntimeError("no audit archive is configured")
        archive = self._archive()
        self.chain(org, wait=True)
        rows = self.trail.between(org, start, start + _DAY)
        lines = "".join(json.dumps(_row_json(r), sort_keys=True) + "\n" for r in rows)
        data = gzip.compress(lines.encode(), mtime=0)  # same rows, same bytes
        key = export_key(self.prefix, org, start, "audit.jsonl.gz")
        digest = hashlib.sha256(data).hexdigest()
        if not archive.exists(key):
            archive.put(key, data, content_type="application/gzip")
        head = self.trail.head(org)
        last = rows[-1] if rows else None
        manifest = {
            "org": org, "period_start": iso_z(start), "period_end": iso_z(start + _DAY),
            "objects": [{"key": key, "sha256": digest, "rows": len(rows), "bytes": len(data)}],
            "first_seq": rows[0].chain_seq if rows else None,
            "last_seq": last.chain_seq if last else None,
            "last_hash": last.hash.hex() if last else None,
            "chain_head": {"seq": head.last_seq, "hash": head.last_hash.hex()} if head else None,
            "exported_at": iso_z(self._clock()),
        }  # fmt: skip
        manifest_key = export_key(self.prefix, org, start, "manifest.json")
        if not archive.exists(manifest_key):
            body = json.dumps(manifest, indent=1, sort_keys=True).encode()
            archive.put(manifest_key, body, content_type="application/json")
        self.trail.record_export(
            AuditExportRecord(
                org, start, start + _DAY, key, digest, len(rows),
                rows[0].chain_seq if rows else None, last.chain_seq if last else None,
                last.hash if last else None,
            )
        )  # fmt: skip
        return manifest
