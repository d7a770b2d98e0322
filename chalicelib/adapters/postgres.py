"""PostgreSQL adapter: a process-wide pool, one transaction per unit of work.

The pool connects as the runtime login (``Settings.runtime_database_url``),
which owns nothing and may only act as ``docs_app``; row-level security is
forced on every tenant table (docs/database-roles.md).  Cross-org maintenance
(cache repair here, the search sync, upload expiry) runs as ``docs_app`` too,
through ``SECURITY DEFINER`` functions that return ids and versions only
(``maintenance``); content is then read under the row's org.

RDS Proxy friendly: the pool is created once per execution environment and
reused across invocations; server-side prepared statements are off
(``prepare_threshold=None``); nothing is set on the session: the tenant, the
``docs_app`` role (so row-level security applies) and the statement timeout
are all set with ``set_config(..., true)``, i.e. ``SET LOCAL``, and vanish at
commit.  With ``DOCS_DB_IAM_AUTH`` each new connection gets a fresh IAM token.

Vendor errors are mapped here, once: connection-level failures become
``DependencyUnavailable`` (503 + Retry-After), never a 500.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb
from psycopg_pool import ConnectionPool, PoolTimeout

from chalicelib.config import Settings
from chalicelib.domain.errors import DependencyUnavailable, TransientDatabaseError
from chalicelib.domain.model import Document
from chalicelib.domain.ports import Change, ListCursor, VersionRecord

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"
_MIGRATION_LOCK = 0x646F6373  # "docs"
_DOC_COLUMNS = (
    "org, id, title, body, tags, metadata, version, owner, created_at, updated_at, "
    "deleted_at, content"
)
_OP_FOR_ACTION = {"delete": "delete", "purge": "purge"}
_RECORD_CHANGE = (
    "version_row AS (INSERT INTO document_versions (org, id, version, title, body, tags, "
    "metadata, content, deleted, author, action, created_at) SELECT org, id, version, title, "
    "body, tags, metadata, content, deleted_at IS NOT NULL, %(actor)s, %(action)s, updated_at "
    "FROM changed), "
    "outbox_row AS (INSERT INTO outbox (org, doc_id, version, op) "
    "SELECT org, id, version, %(op)s FROM changed), "
    "audit_row AS (INSERT INTO audit_log (org, actor, action, doc_id, version, request_id, "
    "details) SELECT org, %(actor)s, %(action)s, id, version, %(request_id)s, "
    "jsonb_strip_nulls(jsonb_build_object('title', title, 'deleted', deleted_at IS NOT NULL, "
    "'client_request_id', %(client_request_id)s::text)) FROM changed)"
)
_UNAVAILABLE = (psycopg.OperationalError, psycopg.InterfaceError, PoolTimeout)
_ROLLED_BACK = (psycopg.errors.SerializationFailure, psycopg.errors.DeadlockDetected)


def _doc(row: dict[str, Any]) -> Document:
    return Document(
        org=row["org"],
        id=row["id"],
        title=row["title"],
        body=row["body"],
        tags=list(row["tags"]),
        metadata=row["metadata"],
        version=row["version"],
        owner=row["owner"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        deleted_at=row["deleted_at"],
        content=row["content"],
    )


def _document_result(cur: psycopg.Cursor[dict[str, Any]]) -> dict[str, Any] | None:
    """The row of the document SELECT in a multi-statement result (BEGIN; settings; SELECT)."""
    cur.nextset()  # past BEGIN's (empty) result
    cur.nextset()  # past the settings row
    return cur.fetchone()


class PostgresRepository:
    """Implements ``DocumentRepository`` on one open transaction."""

    def __init__(
        self,
        conn: psycopg.Connection[dict[str, Any]],
        org: str,
        begin: Callable[[], sql.Composable] | None = None,
    ) -> None:
        self.conn = conn
        self.org = org
        self.begin = begin  # BEGIN + tenant settings, to read again after COMMIT
        self.prefetched: dict[str, Document | None] = {}  # read together with BEGIN
        self.committing = False  # a statement carrying COMMIT was sent: outcome unknown
        self.committed = False  # ... and it came back: the transaction is over

    def _fetchone(self, query: str, params: tuple[Any, ...]) -> dict[str, Any] | None:
        """One row; after the transaction's COMMIT went out with a write (a lost
        race: the caller reads who won) in a new tenant-scoped transaction sent
        in the same single round trip: outside one the login can read nothing."""
        if not self.committed:
            return self.conn.execute(query, params).fetchone()
        if self.begin is None:
            raise RuntimeError("this transaction is over")
        cur = psycopg.ClientCursor(self.conn, row_factory=dict_row)
        read = sql.SQL(cur.mogrify(query, params))  # type: ignore[arg-type]
        cur.execute(sql.Composed([self.begin(), sql.SQL("; "), read, sql.SQL("; COMMIT")]))
        return _document_result(cur)

    def get(self, doc_id: str) -> Document | None:
        if doc_id in self.prefetched:
            return self.prefetched.pop(doc_id)
        row = self._fetchone(
            f"SELECT {_DOC_COLUMNS} FROM documents WHERE org = %s AND id = %s",
            (self.org, doc_id),
        )
        return _doc(row) if row else None

    def insert(self, doc: Document, change: Change, *, last: bool = False) -> bool:
        return self._write(
            "INSERT INTO documents (org, id, title, body, tags, metadata, version, owner, "
            "created_at, updated_at, deleted_at, content) VALUES (%(org)s, %(id)s, %(title)s, "
            "%(body)s, %(tags)s, %(metadata)s, %(version)s, %(owner)s, %(created_at)s, "
            "%(updated_at)s, %(deleted_at)s, %(content)s) ON CONFLICT (org, id) DO NOTHING",
            doc,
            change,
            expected_version=None,
            last=last,
        )

    def update(
        self, doc: Document, change: Change, *, expected_version: int, last: bool = False
    ) -> bool:
        return self._write(
            "UPDATE documents SET title = %(title)s, body = %(body)s, tags = %(tags)s, "
            "metadata = %(metadata)s, version = %(version)s, owner = %(owner)s, "
            "created_at = %(created_at)s, updated_at = %(updated_at)s, "
            "deleted_at = %(deleted_at)s, content = %(content)s "
            "WHERE org = %(org)s AND id = %(id)s AND version = %(expected_version)s",
            doc,
            change,
            expected_version=expected_version,
            last=last,
        )

    def _write(
        self,
        statement: str,
        doc: Document,
        change: Change,
        *,
        expected_version: int | None,
        last: bool = False,
    ) -> bool:
        """The row change, its version row, outbox row and audit row: one statement.

        Data-modifying CTEs run together and read the changed row from
        ``RETURNING``; when the row did not change (id taken, or not at the
        expected version) nothing else is written either.  With ``last`` the
        statement and COMMIT travel together: values are bound client-side and
        both go as one simple-protocol query (one round trip, not two).
        """
        query = (
            f"WITH changed AS ({statement} RETURNING *), {_RECORD_CHANGE} "
            "SELECT version FROM changed"
        )
        cur: psycopg.Cursor[dict[str, Any]]
        if last:
            query += "; COMMIT"
            cur = psycopg.ClientCursor(self.conn, row_factory=dict_row)
            self.committing = True
        else:
            cur = self.conn.cursor()
        row = cur.execute(
            query,
            {
                "org": self.org,
                "id": doc.id,
                "title": doc.title,
                "body": Jsonb(doc.body),
                "tags": doc.tags,
                "metadata": Jsonb(doc.metadata),
                "version": doc.version,
                "owner": doc.owner,
                "created_at": doc.created_at,
                "updated_at": doc.updated_at,
                "deleted_at": doc.deleted_at,
                "content": Jsonb(doc.content) if doc.content is not None else None,
                "expected_version": expected_version,
                "op": "delete" if doc.deleted else _OP_FOR_ACTION.get(change.action, "upsert"),
                "action": change.action,
                "actor": change.actor,
                "request_id": change.request_id,
                "client_request_id": change.client_request_id,
            },
        ).fetchone()
        if last:
            self.committed = True
        return row is not None

    def list_documents(
        self, *, limit: int, after: ListCursor | None, tag: str | None
    ) -> list[Document]:
        clauses = ["org = %s", "deleted_at IS NULL"]
        params: list[Any] = [self.org]
        if after is not None:
            clauses.append("(created_at, id) < (%s, %s)")
            params += [after.created_at, after.id]
        if tag is not None:
            clauses.append("tags @> ARRAY[%s]::text[]")
            params.append(tag)
        params.append(limit)
        rows = self.conn.execute(
            f"SELECT {_DOC_COLUMNS} FROM documents WHERE {' AND '.join(clauses)} "
            "ORDER BY created_at DESC, id DESC LIMIT %s",
            params,
        ).fetchall()
        return [_doc(r) for r in rows]

    def list_versions(self, doc_id: str, *, limit: int, before: int | None) -> list[VersionRecord]:
        rows = self.conn.execute(
            "SELECT * FROM document_versions WHERE org = %s AND id = %s AND version < %s "
            "ORDER BY version DESC LIMIT %s",
            (self.org, doc_id, before if before is not None else 2**62, limit),
        ).fetchall()
        return [_version(r) for r in rows]

    def get_version(self, doc_id: str, version: int) -> VersionRecord | None:
        row = self._fetchone(
            "SELECT * FROM document_versions WHERE org = %s AND id = %s AND version = %s",
            (self.org, doc_id, version),
        )
        return _version(row) if row else None

    def mark_cache_dirty(self, doc_id: str, version: int) -> None:
        self.conn.execute(
            "INSERT INTO cache_dirty (org, doc_id, version) VALUES (%s, %s, %s) "
            "ON CONFLICT (org, doc_id) DO UPDATE SET version = GREATEST(cache_dirty.version, "
            "EXCLUDED.version), created_at = now()",
            (self.org, doc_id, version),
        )


def _version(row: dict[str, Any]) -> VersionRecord:
    return VersionRecord(
        version=row["version"],
        title=row["title"],
        body=row["body"],
        tags=list(row["tags"]),
        metadata=row["metadata"],
        deleted=row["deleted"],
        author=row["author"],
        action=row["action"],
        created_at=row["created_at"],
        content=row["content"],
    )


class PostgresUnitOfWork:
    """Owns the pool; hands out one tenant-scoped transaction at a time."""

    IDLE_CHECK_S = 5.0

    def __init__(self, settings: Settings, *, pool_max: int | None = None) -> None:
        self.settings = settings
        self._pool_max = pool_max or settings.db_pool_max
        self._pool: ConnectionPool[psycopg.Connection[dict[str, Any]]] | None = None
        self._lock = threading.Lock()
        self._returned_at: dict[int, float] = {}
        # outbox inserts NOTIFY docs_outbox at commit (the local consumer listens)
        self._notify = settings.search_nudge == "notify"

    # -- connection management ------------------------------------------------
    def _connect_kwargs(self) -> dict[str, Any]:
        kwargs: dict[str, Any] = {
            # transactions are explicit (see ``transaction``): BEGIN travels
            # with the tenant settings instead of costing its own round trip
            "autocommit": True,
            "prepare_threshold": None,
            "row_factory": dict_row,
            "connect_timeout": max(1, round(self.settings.db_connect_timeout_s)),
            "application_name": "docs-service",
        }
        # sslmode (require by default with IAM auth) and, to verify, sslrootcert
        kwargs.update(self.settings.db_ssl_params())
        if self.settings.db_iam_auth:
            kwargs["password"] = self.iam_token()
        return kwargs

    def iam_token(self, conninfo: str | None = None) -> str:
        """A 15-minute RDS IAM auth token for the user of ``conninfo`` (default:
        the runtime login) (boto3, lazily imported)."""
        import boto3  # lazy: only IAM-auth deployments pay for it

        params = conninfo_to_dict(conninfo or self.settings.runtime_database_url)
        client = boto3.client("rds", region_name=self.settings.aws_region)
        return str(
            client.generate_db_auth_token(
                DBHostname=str(params.get("host") or ""),
                Port=int(params.get("port") or 5432),
                DBUsername=str(params.get("user") or ""),
                Region=self.settings.aws_region,
            )
        )

    @property
    def pool(self) -> ConnectionPool[psycopg.Connection[dict[str, Any]]]:
        if self._pool is None:
            with self._lock:
                if self._pool is None:
                    self._pool = ConnectionPool(
                        self.settings.runtime_database_url,
                        kwargs=self._connect_kwargs,  # type: ignore[arg-type]
                        min_size=min(self.settings.db_pool_min, self._pool_max),
                        max_size=self._pool_max,
                        timeout=self.settings.db_connect_timeout_s,
                        reconnect_timeout=30.0,
                        open=True,
                        name="docs",
                        check=self._check_if_idle,
                    )
        return self._pool

    @contextmanager
    def _checkout(self) -> Iterator[psycopg.Connection[dict[str, Any]]]:
        """A pooled connection, stamped with its last use when it goes back.

        (Stamping here rather than in a pool ``reset`` hook keeps the return
        inline: with a reset hook psycopg_pool hands every returned connection
        to a worker thread, and the next checkout waits for it.)
        """
        with self.pool.connection() as conn:
            try:
                yield conn
            finally:
                self._returned_at[id(conn)] = time.monotonic()

    def _check_if_idle(self, conn: psycopg.Connection[Any]) -> None:
        """Pool ``check`` hook: ping only connections idle for a while.

        A connection used a moment ago is almost surely alive, and pinging it
        on every checkout would cost a round trip per request; one that sat
        idle (a frozen Lambda environment, a proxy idle timeout) is pinged, and
        the pool replaces it if the ping fails.
        """
        idle_since = self._returned_at.get(id(conn))
        if idle_since is None or time.monotonic() - idle_since > self.IDLE_CHECK_S:
            ConnectionPool.check_connection(conn)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.close()
            self._pool = None

    # -- units of work -----------------------------------------------------------
    @contextmanager
    def connection(self) -> Iterator[psycopg.Connection[dict[str, Any]]]:
        try:
            with self._checkout() as conn:
                yield conn
        except _UNAVAILABLE as exc:
            raise DependencyUnavailable(
                "The database is unavailable; retry shortly.", retry_after_s=2
            ) from exc

    def _begin(self, org: str, prefetch: str | None) -> sql.Composed:
        """BEGIN, the transaction-local settings and (optionally) the first read,
        as one simple-protocol query: one round trip.  Values are quoted literals."""
        notify = ", set_config('docs.notify', 'on', true)" if self._notify else ""
        begin = sql.SQL(
            "BEGIN; SELECT set_config('role', 'docs_app', true), "
            "set_config('app.org', {}, true), set_config('statement_timeout', {}, true)" + notify
        ).format(sql.Literal(org), sql.Literal(str(self.settings.db_statement_timeout_ms)))
        if prefetch is None:
            return begin
        select = sql.SQL(f"; SELECT {_DOC_COLUMNS} FROM documents WHERE org = {{}} AND id = {{}}")
        return sql.Composed([begin, select.format(sql.Literal(org), sql.Literal(prefetch))])

    @contextmanager
    def transaction(self, org: str, *, prefetch: str | None = None) -> Iterator[PostgresRepository]:
        """One tenant-scoped transaction; classifies failures for the retry policy.

        ``prefetch`` names a document the caller will read first: it travels
        with BEGIN.  Failures that prove nothing was committed become
        ``TransientDatabaseError`` (retried); a connection lost *during* COMMIT
        has an unknown outcome and is a plain 503, never retried blindly.
        """
        body_done = False
        repo: PostgresRepository | None = None
        try:
            with self._checkout() as conn:
                cur = conn.execute(self._begin(org, prefetch))
                repo = PostgresRepository(conn, org, lambda: self._begin(org, None))
                if prefetch is not None:
                    row = _document_result(cur)
                    repo.prefetched[prefetch] = _doc(row) if row else None
                try:
                    yield repo
                except BaseException:
                    if not conn.broken and not repo.committed:
                        conn.execute("ROLLBACK")
                    raise
                body_done = True
                if not repo.committed:
                    conn.execute("COMMIT")
        except _ROLLED_BACK as exc:
            raise TransientDatabaseError("The database asked us to retry.") from exc
        except psycopg.errors.QueryCanceled as exc:
            raise DependencyUnavailable("The database is overloaded; retry shortly.") from exc
        except _UNAVAILABLE as exc:
            if body_done or (repo is not None and repo.committing):
                raise DependencyUnavailable(
                    "The database connection was lost while committing; read before retrying.",
                    retry_after_s=2,
                ) from exc
            raise TransientDatabaseError(
                "The database is unavailable; retry shortly.", retry_after_s=2
            ) from exc

    def read_document(self, org: str, doc_id: str) -> Document | None:
        """A point read in one round trip (BEGIN, settings, SELECT, COMMIT together)."""
        query = sql.Composed([self._begin(org, doc_id), sql.SQL("; COMMIT")])
        try:
            with self._checkout() as conn:
                row = _document_result(conn.execute(query))
        except _UNAVAILABLE as exc:  # a read is always safe to retry
            raise TransientDatabaseError(
                "The database is unavailable; retry shortly.", retry_after_s=2
            ) from exc
        return _doc(row) if row else None

    @contextmanager
    def maintenance(self) -> Iterator[psycopg.Connection[dict[str, Any]]]:
        """A transaction as ``docs_app`` with no org set: it sees no tenant row.

        Cross-org maintenance goes through the ``docs_*`` SECURITY DEFINER
        functions (ids, versions, status; never content); to read content the
        caller sets the row's org with ``tenant`` first.  BEGIN and the role
        travel together (one round trip)."""
        with self.connection() as conn:
            conn.execute("BEGIN; SELECT set_config('role', 'docs_app', true)")
            try:
                yield conn
            except BaseException:
                if not conn.broken:
                    conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    def ping(self) -> None:
        with self.connection() as conn:
            conn.execute("SELECT 1").fetchone()
            conn.rollback()

    # -- cache repair queue (cross-tenant maintenance: ids and versions only)
    def dirty_documents(self, limit: int) -> list[tuple[str, str, int]]:
        with self.maintenance() as conn:
            rows = conn.execute(
                "SELECT org, doc_id, version FROM docs_cache_dirty(%s)", (limit,)
            ).fetchall()
        return [(r["org"], r["doc_id"], r["version"]) for r in rows]

    def clear_dirty(self, items: list[tuple[str, str, int]]) -> None:
        with self.maintenance() as conn:
            conn.execute(
                "SELECT docs_cache_clear_dirty(%s::text[], %s::text[], %s::bigint[])",
                ([i[0] for i in items], [i[1] for i in items], [i[2] for i in items]),
            )


def tenant(conn: psycopg.Connection[Any], org: str) -> None:
    """Scope the rest of a ``maintenance`` transaction to ``org`` (until changed)."""
    conn.execute("SELECT set_config('app.org', %s, true)", (org,))


# Roles are cluster-global: created only when missing, and every statement
# tolerates a concurrent migrator (another database of the same cluster) doing
# the same at the same moment.  Runs as the migrator's session user, which
# needs CREATEROLE (or superuser) the first time; docs/database-roles.md.
_ROLES = """
DO $roles$
DECLARE
  runtime text := current_setting('docs.runtime_login');
  login pg_roles%ROWTYPE;
  other text;
BEGIN
  IF runtime = session_user OR runtime IN ('docs_owner', 'docs_app', 'docs_maintenance') THEN
    RAISE EXCEPTION 'the runtime login must be a login of its own, not %', runtime;
  END IF;
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'docs_owner') THEN
    BEGIN CREATE ROLE docs_owner NOLOGIN;
    EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END;
  END IF;
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'docs_app') THEN
    BEGIN CREATE ROLE docs_app NOLOGIN;
    EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END;
  END IF;
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'docs_maintenance') THEN
    BEGIN CREATE ROLE docs_maintenance NOLOGIN;
    EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END;
  END IF;
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = runtime) THEN
    BEGIN EXECUTE format('CREATE ROLE %I LOGIN NOINHERIT', runtime);
    EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END;
  END IF;

  SELECT * INTO login FROM pg_roles WHERE rolname = runtime;
  IF login.rolsuper OR login.rolbypassrls OR login.rolcreaterole OR login.rolcreatedb THEN
    RAISE EXCEPTION 'the runtime login % must not be a superuser, nor have BYPASSRLS, '
      'CREATEROLE or CREATEDB', runtime;
  END IF;
  IF login.rolinherit THEN  -- as itself it must hold no privilege: only SET ROLE docs_app
    EXECUTE format('ALTER ROLE %I NOINHERIT', runtime);
  END IF;
  IF NOT EXISTS (SELECT FROM pg_auth_members
                 WHERE roleid = 'docs_app'::regrole AND member = login.oid) THEN
    BEGIN EXECUTE format('GRANT docs_app TO %I', runtime);
    EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END;
  END IF;
  FOR other IN SELECT r.rolname FROM pg_auth_members m JOIN pg_roles r ON r.oid = m.roleid
               WHERE m.member = login.oid AND r.rolname NOT IN ('docs_app', 'rds_iam')
  LOOP
    RAISE WARNING 'the runtime login % is also a member of %: it should be docs_app only',
      runtime, other;
  END LOOP;

  -- the migration login acts as the owner; the owner manages the maintenance functions
  IF NOT pg_has_role(session_user, 'docs_owner', 'MEMBER') THEN
    BEGIN EXECUTE format('GRANT docs_owner TO %I', session_user);
    EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END;
  END IF;
  IF NOT EXISTS (SELECT FROM pg_auth_members WHERE roleid = 'docs_maintenance'::regrole
                 AND member = 'docs_owner'::regrole) THEN
    BEGIN GRANT docs_maintenance TO docs_owner;
    EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END;
  END IF;

  -- the owner owns the schema (per database; this one is under the migration lock)
  IF (SELECT nspowner FROM pg_namespace WHERE nspname = 'public') <> 'docs_owner'::regrole THEN
    BEGIN
      ALTER SCHEMA public OWNER TO docs_owner;
    EXCEPTION WHEN insufficient_privilege THEN
      RAISE WARNING 'cannot make docs_owner own schema public (%): granting CREATE instead',
        SQLERRM;
      GRANT USAGE, CREATE ON SCHEMA public TO docs_owner;
    END;
  END IF;
END $roles$
"""
DEFAULT_RUNTIME_USER = "docs_runtime"
# Files up to this one run as the migrator's session user (as they always did;
# this one re-owns what they created); every later file runs as docs_owner.
ROLES_MIGRATION = "0006_database_roles"


def migrate(database_url: str, *, runtime_user: str = DEFAULT_RUNTIME_USER) -> list[str]:
    """Apply pending migrations in order; safe to run twice and concurrently.

    ``database_url`` is the migration login's (the owner's); ``runtime_user``
    is the login the service connects as, which gets ``docs_app`` and nothing
    else.  The roles are ensured first; each file then runs in its own
    transaction under a transaction-level advisory lock, as ``docs_owner``
    (see ``ROLES_MIGRATION``), and is recorded in ``schema_migrations`` in that
    same transaction.
    """
    applied_now: list[str] = []
    files = sorted(p for p in MIGRATIONS_DIR.glob("*.sql"))
    with psycopg.connect(database_url, autocommit=False, prepare_threshold=None) as conn:
        # read by the files (session-level: it outlives each file's transaction)
        conn.execute("SELECT set_config('docs.runtime_login', %s, false)", (runtime_user,))
        conn.commit()
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK,))
            conn.execute(_ROLES.encode())
            conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations ("
                "version text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
            )
        for path in files:
            with conn.transaction():
                conn.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK,))
                done = conn.execute(
                    "SELECT 1 FROM schema_migrations WHERE version = %s", (path.stem,)
                ).fetchone()
                if done:
                    continue
                if path.stem > ROLES_MIGRATION:
                    conn.execute("SET LOCAL ROLE docs_owner")
                conn.execute(path.read_text().encode())
                conn.execute("INSERT INTO schema_migrations (version) VALUES (%s)", (path.stem,))
                applied_now.append(path.stem)
    return applied_now
