"""Share notifications in PostgreSQL (migration 0018): the outbox as their stream, with
a cursor of their own, and the users' notification settings.

The stream reuses the real-time fan-out's cursor machinery (migration 0008,
``docs_realtime_claim``/``docs_realtime_advance`` under another consumer name), so
neither the search sync, nor the fan-out, nor this consumer can delay another.
A batch is one maintenance transaction: the claim locks the cursor row; only the
*safe* rows (older than every running transaction) are handed out, so the cursor
never passes a row that could still commit behind it.  The grant changes among
them are read per org with ``app.org`` set (row-level security applies): the audit
row of each new version (``grant.put``, the grantee and the actor through
``audit_actors``), kept only while the grant still stands and the document is live.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from psycopg.types.json import Jsonb

from chalicelib.adapters.postgres.document_states import tenant
from chalicelib.adapters.postgres.realtime import advance_cursor, claim_rows, cursor_stats
from chalicelib.domain.notifications import Contact, ShareEvent
from chalicelib.domain.realtime import StreamRow, StreamStats

if TYPE_CHECKING:
    import psycopg

    from chalicelib.adapters.postgres.protocols import Database

_EVENTS = (
    "SELECT a.doc_id, a.version, g.user_id AS grantee, "
    "coalesce(m.user_id, 'A colleague') AS actor, a.details ->> 'role' AS role, "
    "a.details ->> 'previous_role' AS previous_role FROM audit_log a "
    "JOIN audit_actors g ON g.org = a.org AND g.pseudonym = a.details ->> 'grantee' "
    "LEFT JOIN audit_actors m ON m.org = a.org AND m.pseudonym = a.actor "
    "JOIN document_grants dg ON dg.org = a.org AND dg.doc_id = a.doc_id "
    "AND dg.grantee = g.user_id "
    "JOIN documents d ON d.org = a.org AND d.id = a.doc_id AND d.deleted_at IS NULL "
    "WHERE a.org = %s AND a.action = 'grant.put' AND a.doc_id = ANY(%s) "
    "AND (a.doc_id, a.version) IN (SELECT * FROM unnest(%s::text[], %s::bigint[])) "
    "ORDER BY a.chain_seq"
)
_CONTACT = (
    "SELECT email, shares, updated_at FROM notification_settings WHERE org = %s AND user_id = %s"
)
# a send is recorded unless one was within the window (the row is kept per document
# and recipient; an older one is taken over)
_CLAIM = (
    "INSERT INTO notifications_sent AS s (org, doc_id, recipient, sent_at) "
    "VALUES (%(org)s, %(doc)s, %(to)s, now()) ON CONFLICT (org, doc_id, recipient) "
    "DO UPDATE SET sent_at = now() "
    "WHERE s.sent_at <= now() - make_interval(secs => %(window)s) RETURNING 1"
)


class _Batch:
    """Implements ``ShareBatch`` on the batch's maintenance connection."""

    def __init__(self, conn: psycopg.Connection[dict[str, Any]], rows: list[StreamRow]) -> None:
        self.conn = conn
        self.rows = rows
        self.events: dict[int, list[ShareEvent]] = {}
        self.advanced_to: tuple[int, int] | None = None
        self._read_events()

    def _read_events(self) -> None:
        by_org: dict[str, list[StreamRow]] = {}
        for row in self.rows:
            if row.op == "upsert":
                by_org.setdefault(row.org, []).append(row)
        for org, rows in sorted(by_org.items()):
            tenant(self.conn, org)
            ids = [r.doc_id for r in rows]
            found = self.conn.execute(
                _EVENTS, (org, sorted(set(ids)), ids, [r.version for r in rows])
            ).fetchall()
            seq_of = {(r.doc_id, r.version): r.seq for r in rows}
            for f in found:
                event = ShareEvent(org, f["doc_id"], int(f["version"]), f["grantee"],
                                   f["actor"], str(f["role"]), f["previous_role"])  # fmt: skip
                self.events.setdefault(seq_of[(event.doc_id, event.version)], []).append(event)

    def contact(self, org: str, user: str) -> Contact | None:
        tenant(self.conn, org)
        row = self.conn.execute(_CONTACT, (org, user)).fetchone()
        return None if row is None else Contact(row["email"], row["shares"], row["updated_at"])

    @contextmanager
    def claim(self, org: str, doc_id: str, recipient: str, window_s: int) -> Iterator[bool]:
        tenant(self.conn, org)
        self.conn.execute("SAVEPOINT share_claim")
        try:
            row = self.conn.execute(
                _CLAIM, {"org": org, "doc": doc_id, "to": recipient, "window": window_s}
            ).fetchone()
            yield row is not None
        except BaseException:
            self.conn.execute("ROLLBACK TO SAVEPOINT share_claim")
            raise
        self.conn.execute("RELEASE SAVEPOINT share_claim")

    def advance(self, txid: int, seq: int) -> None:
        self.advanced_to = (txid, seq)


class PostgresShareStream:
    """Implements ``ShareStream`` for the consumer ``name`` (a ``realtime_cursors`` row)."""

    def __init__(self, uow: Database, name: str = "notifications") -> None:
        self.uow = uow
        self.name = name

    @contextmanager
    def batch(self, limit: int) -> Iterator[_Batch]:
        with self.uow.maintenance() as conn:
            safe = [
                r for r in claim_rows(conn, self.name, limit) if r.safe
            ]  # (txid, seq) order: the safe ones come first
            batch = _Batch(conn, safe)
            yield batch
            if batch.advanced_to is not None:
                tenant(conn, "")
                advance_cursor(conn, self.name, batch.advanced_to)

    def stats(self) -> StreamStats:
        with self.uow.maintenance() as conn:
            return cursor_stats(conn, self.name)


class PostgresNotificationSettings:
    """Implements ``NotificationSettingsStore``."""

    def __init__(self, uow: Database) -> None:
        self.uow = uow

    def get(self, org: str, user: str) -> Contact | None:
        with self.uow.transaction(org) as tx:
            row = tx.conn.execute(_CONTACT, (org, user)).fetchone()
        return None if row is None else Contact(row["email"], row["shares"], row["updated_at"])

    def put(self, org: str, user: str, changes: dict[str, Any]) -> Contact:
        email = changes.get("email")
        with self.uow.transaction(org) as tx:
            row = tx.conn.execute(
                "INSERT INTO notification_settings AS n (org, user_id, email, shares) "
                "VALUES (%(org)s, %(user)s, %(email)s, coalesce(%(shares)s, true)) "
                "ON CONFLICT (org, user_id) DO UPDATE SET "
                "email = CASE WHEN %(set_email)s THEN excluded.email ELSE n.email END, "
                "shares = coalesce(%(shares)s, n.shares), updated_at = now() "
                "RETURNING email, shares, updated_at",
                {"org": org, "user": user, "email": Jsonb(email) if email else None,
                 "shares": changes.get("shares"), "set_email": "email" in changes},
            ).fetchone()  # fmt: skip
        assert row is not None
        return Contact(row["email"], row["shares"], row["updated_at"])


def notification_rows(conn: psycopg.Connection[Any], org: str, user: str) -> dict[str, Any] | None:
    """The user's settings as the export carries them (the address still sealed)."""
    row: dict[str, Any] | None = conn.execute(_CONTACT, (org, user)).fetchone()
    return row


def erase_notifications(conn: psycopg.Connection[Any], org: str, user: str) -> None:
    """Erasure: the user's settings (and address) and the sends recorded to them."""
    conn.execute("DELETE FROM notification_settings WHERE org = %s AND user_id = %s", (org, user))
    conn.execute("DELETE FROM notifications_sent WHERE org = %s AND recipient = %s", (org, user))
