"""The changes feed in PostgreSQL: an org's outbox rows, read in the org's own
transaction (``tx.change_feed``), where row-level security applies."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from psycopg.rows import class_row

from chalicelib.adapters.postgres.access import readable_clause
from chalicelib.domain.changes import FeedCursor, FeedRow
from chalicelib.domain.errors import Gone
from chalicelib.domain.viewer import Viewer

if TYPE_CHECKING:
    from chalicelib.adapters.postgres.protocols import TenantTransaction


class PostgresChangeFeed:
    """Implements ``ChangeFeed`` on an open tenant-scoped transaction (``tx.change_feed``)."""

    def __init__(self, tx: TenantTransaction) -> None:
        self.conn = tx.conn
        self.org = tx.org

    def changes(
        self, since: FeedCursor | None, limit: int, *, viewer: Viewer | None = None
    ) -> tuple[list[FeedRow], FeedCursor]:
        """Rows after ``since`` (None: from now on) of transactions that finished
        before every running one, in (txid, seq) order, and the next cursor.

        With a non-admin ``viewer``, only rows of documents it may read *now*
        (domain/access.py), filtered in the query so pages stay full: a change
        of a document it may not read is left out, as are rows of documents
        that no longer exist (purged: their ACL is gone with them)."""
        snapshot = self.conn.execute(
            "SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint AS x"
        ).fetchone()
        assert snapshot is not None
        horizon = int(snapshot["x"])
        if since is None:
            return [], FeedCursor(horizon, 0)
        pruned = self.conn.execute(
            "SELECT txid::text::bigint AS txid, seq FROM outbox_pruned WHERE id = 1"
        ).fetchone()
        if pruned is not None and since < FeedCursor(pruned["txid"], pruned["seq"]):
            raise Gone(
                "Changes before this cursor have been pruned: read GET /documents for a "
                "full copy, then follow the feed from since=now.",
            )
        acl, acl_params = "", list[Any]()
        if viewer is not None and not viewer.admin:
            clause, acl_params = readable_clause(viewer, "d")
            acl = (
                " AND EXISTS (SELECT 1 FROM documents d WHERE d.org = outbox.org "
                f"AND d.id = outbox.doc_id AND {clause})"
            )
        rows = (
            self.conn.cursor(row_factory=class_row(FeedRow))
            .execute(
                "SELECT seq, txid::text::bigint AS txid, doc_id, version, op, created_at "
                "FROM outbox WHERE org = %s AND (txid, seq) > (%s::text::xid8, %s) "
                f"AND txid < %s::text::xid8{acl} ORDER BY txid, seq LIMIT %s",
                (self.org, str(since.txid), since.seq, str(horizon), *acl_params, limit),
            )
            .fetchall()
        )
        last = FeedCursor(rows[-1].txid, rows[-1].seq) if rows else since
        if len(rows) < limit:
            # every finished row of this org after the cursor was returned: the
            # next page can start at the horizon (skipping other orgs' rows)
            last = max(last, FeedCursor(horizon, 0))
        return rows, last
