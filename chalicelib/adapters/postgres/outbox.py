"""The outbox as a stream: claims for the search sync, the changes feed, lag.

Claiming (``claim``) runs in one transaction that stays open while the batch is
indexed, so a consumer that dies mid-batch leaves nothing half-marked: its
connection drops, the transaction rolls back, the row locks vanish and the
rows are claimed again.

- ``FOR UPDATE SKIP LOCKED`` lets several consumers claim disjoint rows.
- A transaction-level advisory lock per document (``pg_try_advisory_xact_lock``)
  keeps two consumers from syncing the *same* document at once; rows of a
  document another consumer holds are left for later.  Together with reading
  the document's current row (not the outbox row's payload) this makes the
  order in which rows are processed irrelevant: whoever syncs a document
  writes its newest committed state, and external versions do the rest.
- Rows are marked processed only after OpenSearch acknowledged them.

The sync and reindex are cross-tenant maintenance, yet they run as the tenant
role ``docs_app`` like everything else (``PostgresUnitOfWork.maintenance``):
outbox rows, the index registry and live document ids come from ``docs_*``
SECURITY DEFINER functions that return ids, versions and status only (migration
0006); each document's content is then read with ``app.org`` set to its org,
so row-level security applies to every content read.  The changes feed
(``PostgresChangeFeed``) is tenant-scoped: it reads in the org's own
transaction (``tx.change_feed``).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import psycopg
from psycopg.rows import class_row

from chalicelib.adapters.postgres.access import readable_clause
from chalicelib.domain.changes import FeedCursor, FeedRow
from chalicelib.domain.errors import Gone
from chalicelib.domain.keys import join_key
from chalicelib.domain.outbox import DocumentState, OutboxRow, OutboxStats
from chalicelib.domain.viewer import Viewer

if TYPE_CHECKING:
    from chalicelib.adapters.postgres.transaction import PostgresTransaction
    from chalicelib.adapters.postgres.uow import PostgresUnitOfWork

_LOCK_SPACE = 0x73796E63  # "sync": advisory lock keys are hashed into their own space
_REINDEX_LOCK = 0x72656978  # "reix"
# one org's documents (app.org is set to it: row-level security applies)
_DOC_STATE = (
    "SELECT d.org, d.id, d.title, d.body, d.tags, d.owner, d.version, d.created_at, "
    "d.updated_at, d.deleted_at, d.content, d.metadata, d.visibility, ARRAY(SELECT g.grantee FROM "
    "document_grants g WHERE g.org = d.org AND g.doc_id = d.id ORDER BY g.grantee) AS grantees, "
    "(SELECT t.text FROM document_content_text t "
    "WHERE t.org = d.org AND t.doc_id = d.id AND t.version <= d.version "
    "ORDER BY t.version DESC LIMIT 1) AS content_text FROM documents d "
    "WHERE d.org = %s AND d.id = ANY(%s)"
)


def tenant(conn: psycopg.Connection[Any], org: str) -> None:
    """Scope the rest of a ``maintenance`` transaction to ``org`` (until changed)."""
    conn.execute("SELECT set_config('app.org', %s, true)", (org,))


@dataclass
class PostgresClaim:
    """Implements ``Claim``: one claimed batch, inside its open transaction."""

    conn: psycopg.Connection[dict[str, Any]]
    rows: list[OutboxRow]  # rows of the documents this consumer locked
    skipped: int  # rows left for the consumer that holds their document
    states: dict[tuple[str, str], DocumentState | None] = field(default_factory=dict)
    building: list[str] = field(default_factory=list)  # indexes a reindex is building

    def done(self, rows: list[OutboxRow]) -> None:
        if rows:
            self.conn.execute("SELECT docs_outbox_done(%s::bigint[])", ([r.seq for r in rows],))

    def retry(
        self, rows: list[OutboxRow], reason: str, delays: list[float], *, counted: bool = True
    ) -> None:
        if len(rows) != len(delays):
            raise ValueError("one delay per row")
        if rows:
            self.conn.execute(
                "SELECT docs_outbox_retry(%s::bigint[], %s::float8[], %s, %s)",
                ([r.seq for r in rows], [float(d) for d in delays], reason[:2000], counted),
            )

    def dead_letter(self, rows: list[OutboxRow], reason: str) -> None:
        if rows:
            self.conn.execute(
                "SELECT docs_outbox_dead_letter(%s::bigint[], %s)",
                ([r.seq for r in rows], reason[:2000]),
            )


class PostgresOutbox:
    """Implements ``Outbox``: the search sync's side, cross-org maintenance."""

    def __init__(self, uow: PostgresUnitOfWork, alias: str) -> None:
        self.uow = uow
        self.alias = alias

    # -- the sync ------------------------------------------------------------------
    @contextmanager
    def claim(self, limit: int, *, only: tuple[str, str] | None = None) -> Iterator[PostgresClaim]:
        """Claim up to ``limit`` due rows (all of one document with ``only``);
        commits what the caller marked when the block exits cleanly."""
        org, doc_id = only if only is not None else (None, None)
        with self.uow.maintenance() as conn:
            rows = (
                conn.cursor(row_factory=class_row(OutboxRow))
                .execute(
                    "SELECT seq, org, doc_id, version, op, attempts, created_at "
                    "FROM docs_outbox_claim(%s, %s, %s)",
                    (limit, org, doc_id),
                )
                .fetchall()
            )
            locked = self._lock_documents(conn, {r.key for r in rows})
            mine = [r for r in rows if r.key in locked]
            claim = PostgresClaim(conn, mine, skipped=len(rows) - len(mine))
            claim.states = self._states(conn, locked)
            claim.building = self._building(conn)  # read after the claim: see reindex
            yield claim

    @contextmanager
    def lock_documents(self, keys: set[tuple[str, str]]) -> Iterator[PostgresClaim]:
        """Lock documents (waiting for a consumer that holds one) and read their
        state: the reindex catch-up and backfill repairs use it."""
        with self.uow.maintenance() as conn:
            for org, doc_id in sorted(keys):
                conn.execute(
                    "SELECT pg_advisory_xact_lock(%s, hashtext(%s))",
                    (_LOCK_SPACE, join_key(org, doc_id)),
                )
            claim = PostgresClaim(conn, [], skipped=0)
            claim.states = self._states(conn, keys)
            claim.building = self._building(conn)
            yield claim

    @staticmethod
    def _lock_documents(
        conn: psycopg.Connection[dict[str, Any]], keys: set[tuple[str, str]]
    ) -> set[tuple[str, str]]:
        if not keys:
            return set()
        ordered = sorted(keys)
        got = conn.execute(
            "SELECT k.org, k.id FROM unnest(%s::text[], %s::text[]) AS k(org, id) "
            "WHERE pg_try_advisory_xact_lock(%s, hashtext("
            "length(k.org) || ':' || k.org || length(k.id) || ':' || k.id))",  # = join_key
            ([k[0] for k in ordered], [k[1] for k in ordered], _LOCK_SPACE),
        ).fetchall()
        return {(r["org"], r["id"]) for r in got}

    @staticmethod
    def _states(
        conn: psycopg.Connection[dict[str, Any]], keys: set[tuple[str, str]]
    ) -> dict[tuple[str, str], DocumentState | None]:
        """Each document's current state, read org by org with ``app.org`` set
        to that org (row-level security applies; None: purged or not visible)."""
        states: dict[tuple[str, str], DocumentState | None] = dict.fromkeys(keys)
        by_org: dict[str, list[str]] = {}
        for org, doc_id in sorted(keys):
            by_org.setdefault(org, []).append(doc_id)
        for org, ids in by_org.items():
            tenant(conn, org)
            for row in conn.execute(_DOC_STATE, (org, ids)).fetchall():
                states[(row["org"], row["id"])] = row
        if by_org:
            tenant(conn, "")  # back to no tenant for the rest of the transaction
        return states

    def _building(self, conn: psycopg.Connection[dict[str, Any]]) -> list[str]:
        return [
            r["name"]
            for r in conn.execute(
                "SELECT name FROM docs_search_building(%s) AS name", (self.alias,)
            ).fetchall()
        ]

    # -- reindex ------------------------------------------------------------------
    @contextmanager
    def exclusive_reindex(self) -> Iterator[bool]:
        """A transaction-level advisory lock held for the whole reindex (one at a time)."""
        with self.uow.connection() as guard, guard.transaction():
            got = guard.execute("SELECT pg_try_advisory_xact_lock(%s) AS got", (_REINDEX_LOCK,))
            row = got.fetchone()
            yield bool(row and row["got"])

    def building_indexes(self) -> list[str]:
        with self.uow.maintenance() as conn:
            return self._building(conn)

    def register_building(self, name: str) -> None:
        with self.uow.maintenance() as conn:
            conn.execute("SELECT docs_search_register(%s, %s)", (name, self.alias))

    def documents_page(self, after: tuple[str, str] | None, limit: int) -> list[DocumentState]:
        """Live documents in (org, id) order, with their content text (backfill):
        ids from ``docs_live_document_ids``, content read under each org."""
        after_org, after_id = after if after is not None else (None, None)
        with self.uow.maintenance() as conn:
            keys = [
                (r["org"], r["id"])
                for r in conn.execute(
                    "SELECT org, id FROM docs_live_document_ids(%s, %s, %s)",
                    (limit, after_org, after_id),
                ).fetchall()
            ]
            states = self._states(conn, set(keys))
        page = [states[k] for k in keys]
        return [s for s in page if s is not None and s["deleted_at"] is None]

    def count_live_documents(self) -> int:
        with self.uow.maintenance() as conn:
            row = conn.execute("SELECT docs_count_live_documents() AS n").fetchone()
        return int(row["n"]) if row else 0

    def changed_since_registration(self, name: str) -> dict[tuple[str, str], int]:
        """Documents (and their newest outbox version) of every transaction that
        could have committed after ``name`` was registered."""
        with self.uow.maintenance() as conn:
            rows = conn.execute(
                "SELECT org, doc_id, version FROM docs_outbox_changed_since(%s)", (name,)
            ).fetchall()
        return {(r["org"], r["doc_id"]): int(r["version"]) for r in rows}

    def retire(self, new: str, old: str | None, grace: timedelta) -> None:
        with self.uow.maintenance() as conn:
            conn.execute("SELECT docs_search_retire(%s, %s, %s, %s)", (new, old, self.alias, grace))

    def abandon(self, name: str) -> None:
        with self.uow.maintenance() as conn:
            conn.execute("SELECT docs_search_abandon(%s)", (name,))

    def expired_indexes(self) -> list[str]:
        with self.uow.maintenance() as conn:
            rows = conn.execute(
                "SELECT name FROM docs_search_expired(%s) AS name", (self.alias,)
            ).fetchall()
        return [r["name"] for r in rows]

    # -- observability ------------------------------------------------------------------
    def stats(self) -> OutboxStats:
        """Lag (seconds since the oldest unsynced row committed), backlog, dead letters."""
        with self.uow.maintenance() as conn:
            row = conn.execute(
                "SELECT lag_s, backlog, dead_letters FROM docs_outbox_stats()"
            ).fetchone()
        assert row is not None
        return OutboxStats(
            lag_s=max(0.0, float(row["lag_s"] or 0.0)),
            backlog=int(row["backlog"]),
            dead_letters=int(row["dead_letters"]),
        )

    def dead_letters(self, org: str | None = None, limit: int = 1000) -> list[dict[str, Any]]:
        """Rows that failed to index and were not requeued, oldest first."""
        with self.uow.maintenance() as conn:
            return conn.execute(
                "SELECT seq, org, doc_id, version, op, attempts, reason, failed_at::text "
                "FROM docs_dead_letters(%s, %s)",
                (org, limit),
            ).fetchall()

    def requeue_dead_letters(self, org: str | None = None) -> int:
        """Put dead-lettered rows back in the stream (after fixing their cause)."""
        with self.uow.maintenance() as conn:
            row = conn.execute("SELECT docs_requeue_dead_letters(%s) AS n", (org,)).fetchone()
        return int(row["n"]) if row else 0

    def wake_all(self) -> int:
        """Make every pending row due now (after an outage, or from the CLI)."""
        with self.uow.maintenance() as conn:
            row = conn.execute("SELECT docs_outbox_wake_all() AS n").fetchone()
        return int(row["n"]) if row else 0

    # -- retention ------------------------------------------------------------------
    def prune(self, older_than: timedelta, *, batch: int = 5000, max_batches: int = 20) -> int:
        """Delete processed rows created before ``now() - older_than``, in batches,
        and move the pruned-feed watermark past them.  Pending rows are never
        deleted, however old."""
        deleted = 0
        for _ in range(max_batches):
            with self.uow.maintenance() as conn:
                row = conn.execute(
                    "SELECT docs_outbox_prune(%s, %s) AS n", (older_than, batch)
                ).fetchone()
            n = int(row["n"]) if row else 0
            deleted += n
            if n < batch:
                break
        return deleted


class PostgresChangeFeed:
    """Implements ``ChangeFeed`` on an open tenant-scoped transaction (``tx.change_feed``)."""

    def __init__(self, tx: PostgresTransaction) -> None:
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


# -- long-running consumers (the local sync loop) -----------------------------------
_CONSUMER_SPACE = 0x636F6E73  # "cons": advisory lock space of registered consumers
_APP_NAME = "docs-sync"


@dataclass(frozen=True)
class Consumer:
    """A long-running consumer registered on the outbox: ``key`` names where it
    writes (compare these), ``target`` says it for people, ``pid`` is its process."""

    pid: int
    key: str
    target: str

    @property
    def application_name(self) -> str:
        return f"{_APP_NAME} {self.pid} {self.key} {self.target}"[:63]

    @classmethod
    def parse(cls, application_name: str | None) -> Consumer | None:
        parts = (application_name or "").split(" ", 3)
        if len(parts) != 4 or parts[0] != _APP_NAME or not parts[1].isdigit():
            return None
        return cls(int(parts[1]), parts[2], parts[3])


class OutboxListener:
    """A consumer's own connection: it LISTENs for commits that wrote the outbox,
    and registers the consumer while it is open (a shared advisory lock, the
    consumer in ``application_name``), so consumers can see each other."""

    def __init__(self, conn: psycopg.Connection[dict[str, Any]], me: Consumer) -> None:
        self.conn = conn
        self.me = me

    @property
    def closed(self) -> bool:
        return self.conn.closed

    def wait(self, timeout_s: float) -> bool:
        """Until a notification arrives (True) or ``timeout_s`` passes (False)."""
        return any(True for _ in self.conn.notifies(timeout=timeout_s, stop_after=1))

    def others(self) -> list[Consumer]:
        """The other consumers registered on this database's outbox."""
        rows = self.conn.execute(
            "SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a USING (pid) "
            "WHERE l.locktype = 'advisory' AND l.granted AND l.pid <> pg_backend_pid() "
            "AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database()) "
            "AND l.classid = %s::oid AND l.objid = 0 AND l.objsubid = 2",
            (_CONSUMER_SPACE,),
        ).fetchall()
        found = (Consumer.parse(r["application_name"]) for r in rows)
        return [c for c in found if c is not None]

    def close(self) -> None:
        self.conn.close()


def listen(uow: PostgresUnitOfWork, channel: str, me: Consumer) -> OutboxListener:
    """Open ``me``'s listener connection (as the runtime login, like the pool's)."""
    kwargs = {**uow._connect_kwargs(), "autocommit": True, "application_name": me.application_name}
    conn: psycopg.Connection[dict[str, Any]] = psycopg.connect(
        uow.settings.runtime_database_url, **kwargs
    )
    try:
        conn.execute("SELECT pg_advisory_lock_shared(%s, 0)", (_CONSUMER_SPACE,))
        conn.execute(psycopg.sql.SQL("LISTEN {}").format(psycopg.sql.Identifier(channel)))
    except BaseException:
        conn.close()
        raise
    return OutboxListener(conn, me)
