"""The database itself enforces tenancy (docs/database-roles.md).

Everything here connects as the runtime login (the login the service uses)
with raw SQL to a freshly migrated database, seeded as the admin with rows of
two orgs in every tenant table, and checks what that login can and cannot do
whatever SQL it sends: row-level security is forced everywhere, ``RESET ROLE``
and ``SET ROLE`` gain nothing, other orgs' rows are out of reach in every
tenant table (enumerated from the catalog, so a new table is covered the day
it is added), the schema cannot be changed, the login owns nothing and the
audit log stays append-only.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from psycopg import sql
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from chalicelib.adapters.postgres import migrate
from chalicelib.config import Settings
from tests.conftest import ADMIN_DATABASE_URL, create_database, database_url_for, drop_database

pytestmark = pytest.mark.integration

A, B = "org-a", "org-b"
# tables without an org column: shared, not tenant data, and what docs_app may do there
GLOBAL_TABLES = {
    "search_indexes": set(),  # the reindex registry: maintenance functions only
    "outbox_pruned": {"SELECT"},  # the changes feed's pruned-range watermark
    "realtime_cursors": set(),  # the real-time fan-out's cursor: maintenance functions only
    "database_identity": {"SELECT"},  # the database's id: its Redis key namespace
}
NOT_RLS = {"schema_migrations"}
NOLOGIN_ROLES = ("docs_owner", "docs_app", "docs_maintenance", "docs_audit_chainer")
SEED = """
INSERT INTO documents (org, id, title, body, tags, metadata, version, owner, created_at, updated_at)
  VALUES (%(org)s, 'd1', 'secret of ' || %(org)s, '{"secret": true}', '{}', '{}', 1, 'alice',
          now(), now());
INSERT INTO document_versions (org, id, version, title, body, tags, metadata, author, action,
                               created_at)
  VALUES (%(org)s, 'd1', 1, 'secret', '{}', '{}', '{}', 'alice', 'create', now());
INSERT INTO outbox (org, doc_id, version, op) VALUES (%(org)s, 'd1', 1, 'upsert');
INSERT INTO audit_log (org, actor, action, doc_id, version)
  VALUES (%(org)s, 'alice', 'create', 'd1', 1);
SELECT docs_audit_chain_pending(%(org)s, 10, true);  -- the chainer's head row
INSERT INTO idempotency_keys (org, key, status, expiry, data)
  VALUES (%(org)s, 'idem#' || %(org)s, 'COMPLETED', 4102444800, '{"body": "a response"}');
INSERT INTO cache_dirty (org, doc_id, version) VALUES (%(org)s, 'd1', 1);
INSERT INTO content_uploads (org, upload_id, doc_id, key, content_type, max_bytes, actor,
                             created_at, expires_at)
  VALUES (%(org)s, 'u1', 'd1', 'k', 'text/plain', 10, 'alice', now(), now());
INSERT INTO document_content_text (org, doc_id, version, upload_id, text)
  VALUES (%(org)s, 'd1', 1, 'u1', 'extracted secret');
INSERT INTO search_dead_letters (seq, org, doc_id, version, op, attempts, reason)
  VALUES (%(seq)s, %(org)s, 'd1', 1, 'upsert', 1, 'mapping');
INSERT INTO document_grants (org, doc_id, grantee, role, granted_by)
  VALUES (%(org)s, 'd1', 'bob', 'reader', 'alice');
INSERT INTO export_jobs (org, id, requested_by) VALUES (%(org)s, 'j1', 'alice');
INSERT INTO audit_exports (org, period_start, period_end, object_key, sha256, rows)
  VALUES (%(org)s, '2026-01-01', '2026-01-02', 'audit/k', 'ab', 1);
INSERT INTO document_purges (org, doc_id, keys) VALUES (%(org)s, 'd0', '{"content/k"}');
INSERT INTO document_version_floors (org, doc_id, version) VALUES (%(org)s, 'd0', 3);
INSERT INTO consent_records (org, subject, purpose, granted, policy_version, actor)
  VALUES (%(org)s, 'alice', 'notifications', true, '1', 'alice');
INSERT INTO access_reviews (org, id, reviewed_by, notes, revoked)
  VALUES (%(org)s, 'r1', 'alice', 'quarterly', '[{"document": "d1", "user": "bob"}]');
INSERT INTO notification_settings (org, user_id, email, shares)
  VALUES (%(org)s, 'bob', '{"$enc": "v1"}', true);
INSERT INTO notifications_sent (org, doc_id, recipient, sent_at) VALUES (%(org)s, 'd1', 'bob', now());
INSERT INTO webhook_endpoints (org, id, url, events, secret_sealed)
  VALUES (%(org)s, 'w1', 'https://hooks.example.com/' || %(org)s, '{document.created}', 'v1.x');
INSERT INTO webhook_deliveries (org, id, endpoint_id, outbox_seq, event_type, doc_id, version,
                                payload)
  VALUES (%(org)s, 'm1', 'w1', 1, 'document.created', 'd1', 1, '{"secret": true}');
INSERT INTO webhook_attempts (org, delivery_id, n, status_code)
  VALUES (%(org)s, 'm1', 1, 500);
"""


@pytest.fixture(scope="module")
def db() -> Iterator[str]:
    """A freshly migrated database with rows of orgs A and B in every tenant table."""
    url = create_database()
    with psycopg.connect(url, autocommit=True) as conn:
        for seq, org in enumerate((A, B), start=1):  # several statements: bound client-side
            psycopg.ClientCursor(conn).execute(SEED, {"org": org, "seq": seq})
        conn.execute(
            "INSERT INTO search_indexes (name, alias, state) VALUES ('documents-v1', 'documents', "
            "'building'); INSERT INTO outbox_pruned (id, txid, seq) VALUES (1, '1', 0)"
        )
    yield url
    drop_database(url)


@pytest.fixture(scope="module")
def runtime(db: str) -> Settings:
    return Settings(database_url=db)


@pytest.fixture
def conn(runtime: Settings) -> Iterator[psycopg.Connection[dict[str, Any]]]:
    """The runtime login, as the service connects (raw SQL from here on)."""
    with psycopg.connect(
        runtime.runtime_database_url, autocommit=True, row_factory=dict_row
    ) as connection:
        yield connection


def _admin(db: str) -> psycopg.Connection[dict[str, Any]]:
    return psycopg.connect(db, autocommit=True, row_factory=dict_row)


def _tables(db: str) -> list[str]:
    with _admin(db) as conn:
        rows = conn.execute(
            "SELECT relname FROM pg_class WHERE relnamespace = 'public'::regnamespace "
            "AND relkind IN ('r', 'p') ORDER BY relname"
        ).fetchall()
    return [r["relname"] for r in rows]


def _tenant_tables(db: str) -> list[str]:
    with _admin(db) as conn:
        rows = conn.execute(
            "SELECT c.relname FROM pg_class c JOIN pg_attribute a ON a.attrelid = c.oid "
            "WHERE c.relnamespace = 'public'::regnamespace AND c.relkind IN ('r', 'p') "
            "AND a.attname = 'org' AND NOT a.attisdropped ORDER BY c.relname"
        ).fetchall()
    return [r["relname"] for r in rows]


def _act_as_tenant(conn: psycopg.Connection[Any], org: str | None) -> None:
    conn.execute("SELECT set_config('role', 'docs_app', true)")
    if org is not None:
        conn.execute("SELECT set_config('app.org', %s, true)", (org,))


def _refused(conn: psycopg.Connection[Any], statement: Any, params: Any = None) -> None:
    """The statement fails with insufficient_privilege (42501: no privilege, not the
    owner, or a row-level security violation); the transaction goes on."""
    with pytest.raises(psycopg.errors.InsufficientPrivilege), conn.transaction():
        conn.execute(statement, params)


def _count(conn: psycopg.Connection[Any], table: str, where: str = "true") -> int | None:
    """Rows the current role sees (None: it may not read the table at all)."""
    try:
        with conn.transaction():
            query = sql.SQL("SELECT count(*) AS n FROM {} WHERE " + where).format(
                sql.Identifier(table)
            )
            row = conn.execute(query).fetchone()
    except psycopg.errors.InsufficientPrivilege:
        return None
    assert row is not None
    return int(row["n"])


def _tables_of_interest(db: str) -> list[str]:
    return [t for t in _tables(db) if t not in NOT_RLS]


# ----------------------------------------------------------------- the catalog
def test_every_table_forces_row_level_security_with_a_tenant_policy(db: str) -> None:
    tenant = set(_tenant_tables(db))
    with _admin(db) as conn:
        for table in _tables_of_interest(db):
            rls = conn.execute(
                "SELECT relrowsecurity, relforcerowsecurity FROM pg_class WHERE oid = %s::regclass",
                (table,),
            ).fetchone()
            assert rls == {"relrowsecurity": True, "relforcerowsecurity": True}, table
            policies = conn.execute(
                "SELECT polname, polcmd, pg_get_expr(polqual, polrelid) AS qual, "
                "pg_get_expr(polwithcheck, polrelid) AS checks FROM pg_policy "
                "WHERE polrelid = %s::regclass AND 'docs_app'::regrole::oid = ANY(polroles)",
                (table,),
            ).fetchall()
            if table in tenant:
                assert policies, f"{table} has no policy for docs_app"
                for p in policies:
                    assert "app.org" in (p["qual"] or ""), (table, p)
                    assert p["checks"] is None or "app.org" in p["checks"], (table, p)
            else:
                assert table in GLOBAL_TABLES, f"{table} has no org column: tenant or global?"
                assert all(p["polcmd"] == "r" for p in policies), (table, policies)
            for privilege in ("INSERT", "UPDATE", "DELETE", "TRUNCATE", "REFERENCES", "TRIGGER"):
                if table not in tenant and privilege not in GLOBAL_TABLES[table]:
                    assert not conn.execute(
                        "SELECT has_table_privilege('docs_app', %s, %s) AS p", (table, privilege)
                    ).fetchone()["p"], (table, privilege)  # type: ignore[index]
            # no policy anywhere lets a role other than the tenant or maintenance role in
            others = conn.execute(
                "SELECT polname FROM pg_policy WHERE polrelid = %s::regclass AND NOT "
                "(polroles <@ ARRAY['docs_app'::regrole, 'docs_maintenance'::regrole, "
                "'docs_audit_chainer'::regrole]::oid[])",
                (table,),
            ).fetchall()
            assert others == [], (table, others)


def test_the_seed_covers_every_tenant_table(db: str) -> None:
    """So that the tests below check every tenant table (add a seed row for a new one)."""
    with _admin(db) as conn:
        for table in _tenant_tables(db):
            for org in (A, B):
                n = _count(conn, table, f"org = '{org}'")
                assert n, f"seed a row of {org} in {table} (SEED above)"


def test_the_service_connects_as_the_runtime_login(runtime: Settings) -> None:
    from chalicelib.adapters.postgres import PostgresUnitOfWork

    uow = PostgresUnitOfWork(runtime)
    try:
        with uow.connection() as conn:
            row = conn.execute("SELECT session_user AS s, current_user AS c").fetchone()
        assert row == {"s": runtime.runtime_user, "c": runtime.runtime_user}
        with uow.transaction(A) as tx:
            assert tx.documents.get("d1") is not None  # and as docs_app it sees its own org
            row = tx.conn.execute("SELECT current_user AS c").fetchone()
            assert row == {"c": "docs_app"}
    finally:
        uow.close()


# ----------------------------------------------------------------- the login
def test_the_runtime_login_owns_nothing_and_is_only_a_tenant(db: str, runtime: Settings) -> None:
    with _admin(db) as conn:
        login = conn.execute(
            "SELECT oid, rolsuper, rolinherit, rolcreaterole, rolcreatedb, rolbypassrls, "
            "rolcanlogin FROM pg_roles WHERE rolname = %s",
            (runtime.runtime_user,),
        ).fetchone()
        assert login is not None
        oid = login.pop("oid")
        assert login == {
            "rolsuper": False,
            "rolinherit": False,  # as itself it holds no privilege of docs_app
            "rolcreaterole": False,
            "rolcreatedb": False,
            "rolbypassrls": False,
            "rolcanlogin": True,
        }
        member_of = conn.execute(
            "SELECT roleid::regrole::text AS r FROM pg_auth_members WHERE member = %s", (oid,)
        ).fetchall()
        assert [m["r"] for m in member_of] == ["docs_app"]
        for role in (runtime.runtime_user, "docs_app"):
            owned = conn.execute(
                "SELECT 'relation' AS kind, relname::text AS name FROM pg_class "
                "WHERE relowner = %(r)s::regrole "
                "UNION ALL SELECT 'function', proname::text FROM pg_proc "
                "WHERE proowner = %(r)s::regrole "
                "UNION ALL SELECT 'schema', nspname::text FROM pg_namespace "
                "WHERE nspowner = %(r)s::regrole "
                "UNION ALL SELECT 'type', typname::text FROM pg_type "
                "WHERE typowner = %(r)s::regrole "
                # owned objects in every database of the cluster (shared catalog)
                "UNION ALL SELECT 'object', objid::text FROM pg_shdepend "
                "WHERE refobjid = %(r)s::regrole AND deptype = 'o'",
                {"r": role},
            ).fetchall()
            assert owned == [], (role, owned)
        sequences = conn.execute(
            "SELECT relname FROM pg_class WHERE relkind = 'S' AND relowner <> 'docs_owner'::regrole "
            "AND relnamespace = 'public'::regnamespace"
        ).fetchall()
        assert sequences == []


def test_as_itself_it_reads_nothing(conn: psycopg.Connection[Any], db: str) -> None:
    for table in _tables(db):
        assert _count(conn, table) is None, table


def test_with_no_org_set_it_sees_no_tenant_row(conn: psycopg.Connection[Any], db: str) -> None:
    for org in (None, ""):
        with conn.transaction(force_rollback=True):
            _act_as_tenant(conn, org)
            for table in _tenant_tables(db):
                assert _count(conn, table) in (0, None), (org, table)


def test_reset_role_gains_nothing(conn: psycopg.Connection[Any], db: str) -> None:
    for reset in ("RESET ROLE", "SET ROLE NONE", "SELECT set_config('role', 'none', true)"):
        with conn.transaction(force_rollback=True):
            _act_as_tenant(conn, A)
            conn.execute(reset)
            row = conn.execute("SELECT current_user AS c").fetchone()
            assert row is not None and row["c"] != "docs_app"
            for table in _tables(db):
                assert _count(conn, table) is None, (reset, table)
            _refused(conn, "SELECT * FROM docs_cache_dirty(100)")  # docs_app only
    _refused(conn, "SET SESSION AUTHORIZATION postgres")
    _refused(conn, "SET SESSION AUTHORIZATION docs_owner")


def test_it_cannot_set_any_role_but_docs_app(conn: psycopg.Connection[Any], db: str) -> None:
    with _admin(db) as admin:
        roles = [r["rolname"] for r in admin.execute("SELECT rolname FROM pg_roles").fetchall()]
    me = conn.execute("SELECT session_user AS s").fetchone()["s"]  # type: ignore[index]
    others = [r for r in roles if r not in ("docs_app", me)]
    assert {"postgres", *NOLOGIN_ROLES} - {"docs_app"} <= set(others)
    for role in others:
        _refused(conn, sql.SQL("SET ROLE {}").format(sql.Identifier(role)))
        _refused(conn, "SELECT set_config('role', %s, false)", (role,))
        with conn.transaction(force_rollback=True):  # nor from the tenant role
            _act_as_tenant(conn, A)
            _refused(conn, sql.SQL("SET LOCAL ROLE {}").format(sql.Identifier(role)))
    with conn.transaction(force_rollback=True):
        conn.execute("SET LOCAL ROLE docs_app")  # the one it may take


# ----------------------------------------------------------------- other orgs
def _copy_of_b_row(db: str, table: str) -> tuple[list[str], dict[str, Any]]:
    """Columns (without sequence defaults) and values of one of B's rows, keys changed."""
    with _admin(db) as admin:
        columns = [
            r["attname"]
            for r in admin.execute(
                "SELECT a.attname FROM pg_attribute a LEFT JOIN pg_attrdef d "
                "ON d.adrelid = a.attrelid AND d.adnum = a.attnum WHERE a.attrelid = %s::regclass "
                "AND a.attnum > 0 AND NOT a.attisdropped AND a.attidentity = '' "
                "AND coalesce(pg_get_expr(d.adbin, d.adrelid), '') NOT LIKE 'nextval(%%' "
                "ORDER BY a.attnum",
                (table,),
            ).fetchall()
        ]
        row = admin.execute(
            sql.SQL("SELECT to_jsonb(t) AS j FROM {} t WHERE org = %s LIMIT 1").format(
                sql.Identifier(table)
            ),
            (B,),
        ).fetchone()
    assert row is not None
    values = dict(row["j"])
    for key in ("id", "doc_id", "upload_id", "key"):
        if isinstance(values.get(key), str):
            values[key] += "-copy"
    if table == "search_dead_letters":
        values["seq"] += 1000
    return columns, values


def test_with_an_org_set_other_orgs_rows_are_out_of_reach(
    conn: psycopg.Connection[Any], db: str
) -> None:
    tables = _tenant_tables(db)
    with _admin(db) as admin:
        before = {t: _count(admin, t, f"org = '{B}'") for t in tables}
    for table in tables:
        ident = sql.Identifier(table)
        with conn.transaction(force_rollback=True):
            _act_as_tenant(conn, A)
            # read: nothing of B, whatever the filter (or no read at all)
            assert _count(conn, table, f"org <> '{A}'") in (0, None), table
            # update and delete: B's rows are invisible, so untouched (or not allowed)
            for statement in (
                sql.SQL("UPDATE {} SET org = org WHERE org = %s").format(ident),
                sql.SQL("DELETE FROM {} WHERE org = %s").format(ident),
            ):
                try:
                    with conn.transaction():
                        assert conn.execute(statement, (B,)).rowcount == 0, (table, statement)
                except psycopg.errors.InsufficientPrivilege:
                    pass
            # moving an own row into B is refused
            if _count(conn, table, f"org = '{A}'"):
                _refused(conn, sql.SQL("UPDATE {} SET org = %s").format(ident), (B,))
            # inserting a row of B is refused
            columns, values = _copy_of_b_row(db, table)
            cols = sql.SQL(", ").join(sql.Identifier(c) for c in columns)
            _refused(
                conn,
                sql.SQL(
                    "INSERT INTO {} ({}) SELECT {} FROM jsonb_populate_record(NULL::{}, %s)"
                ).format(ident, cols, cols, ident),
                (Jsonb(values),),
            )
    with _admin(db) as admin:
        assert {t: _count(admin, t, f"org = '{B}'") for t in tables} == before


def test_the_maintenance_functions_are_narrow(conn: psycopg.Connection[Any], db: str) -> None:
    """SECURITY DEFINER functions: owned by docs_maintenance, search_path pinned,
    executable by docs_app only; docs_maintenance itself can read no content."""
    with _admin(db) as admin:
        functions = admin.execute(
            "SELECT p.oid::regprocedure::text AS fn, p.proowner::regrole::text AS owner, "
            "p.proconfig AS config, has_function_privilege('docs_app', p.oid, 'EXECUTE') AS app, "
            "EXISTS (SELECT FROM aclexplode(coalesce(p.proacl, acldefault('f', p.proowner))) x "
            "WHERE x.grantee = 0) AS public FROM pg_proc p "
            "WHERE p.pronamespace = 'public'::regnamespace AND p.prosecdef"
        ).fetchall()
        assert len(functions) >= 10
        for f in functions:
            # the audit chainer (migration 0016) has a role of its own: it reads
            # audit rows whole (to hash them) and nothing else
            chainer = f["fn"].startswith("docs_audit_chain_")
            assert f["owner"] == ("docs_audit_chainer" if chainer else "docs_maintenance"), f
            assert any(c.startswith("search_path=") for c in f["config"] or []), f
            assert f["app"] and not f["public"], f
        content = {
            "documents": ("title", "body", "tags", "metadata", "content", "owner"),
            "document_versions": ("title", "body", "content"),
            "document_content_text": ("text",),
            "idempotency_keys": ("data",),
            "audit_log": ("details",),
            "content_uploads": ("filename", "result", "key"),
        }
        for table, columns in content.items():
            for column in columns:
                assert not admin.execute(
                    "SELECT has_column_privilege('docs_maintenance', %s, %s, 'SELECT') AS p",
                    (table, column),
                ).fetchone()["p"], (table, column)  # type: ignore[index]
        # the chainer's role reads audit rows and chain heads, and no other table
        chainer_reads = admin.execute(
            "SELECT c.relname FROM pg_class c WHERE c.relnamespace = 'public'::regnamespace "
            "AND c.relkind = 'r' AND has_table_privilege('docs_audit_chainer', c.oid, 'SELECT')"
        ).fetchall()
        assert {r["relname"] for r in chainer_reads} == {"audit_log", "audit_chain_heads"}
        chainer_writes = admin.execute(
            "SELECT a.attname FROM pg_attribute a WHERE a.attrelid = 'audit_log'::regclass "
            "AND a.attnum > 0 AND has_column_privilege('docs_audit_chainer', a.attrelid, "
            "a.attnum, 'UPDATE')"
        ).fetchall()
        assert {r["attname"] for r in chainer_writes} == {"chain_seq", "hash"}
        # the owner (and so the migration login) sees no tenant row either: RLS is forced
        with admin.transaction(force_rollback=True):
            admin.execute("SET LOCAL ROLE docs_owner")
            for table in _tenant_tables(db):
                assert _count(admin, table) in (0, None), table
        # and the definer role, even taken directly, reads no content column
        with admin.transaction(force_rollback=True):
            admin.execute("SET LOCAL ROLE docs_maintenance")
            for table, columns in content.items():
                for column in columns:
                    _refused(admin, sql.SQL("SELECT {} FROM {}").format(
                        sql.Identifier(column), sql.Identifier(table)))  # fmt: skip
    with conn.transaction(force_rollback=True):
        _act_as_tenant(conn, None)
        dirty = conn.execute("SELECT * FROM docs_cache_dirty(100)").fetchall()
        assert {(d["org"], d["doc_id"]) for d in dirty} == {(A, "d1"), (B, "d1")}
        assert set(dirty[0]) == {"org", "doc_id", "version"}


# ----------------------------------------------------------------- the schema
SCHEMA_CHANGES = (
    "CREATE TABLE evil (x int)",
    "CREATE TABLE public.evil (x int)",
    "CREATE VIEW evil AS SELECT 1 AS x",
    "CREATE SEQUENCE evil",
    "CREATE SCHEMA evil",
    "CREATE FUNCTION evil() RETURNS int LANGUAGE sql AS 'SELECT 1'",
    "CREATE OR REPLACE FUNCTION docs_cache_dirty(p_limit integer) RETURNS TABLE "
    "(org text, doc_id text, version bigint) LANGUAGE sql AS 'SELECT org, id, version FROM documents'",
    "ALTER FUNCTION docs_cache_dirty(integer) SECURITY INVOKER",
    "DROP FUNCTION docs_outbox_claim(integer, text, text)",
    "ALTER TABLE documents DISABLE ROW LEVEL SECURITY",
    "ALTER TABLE documents NO FORCE ROW LEVEL SECURITY",
    "ALTER TABLE documents ADD COLUMN evil int",
    "ALTER TABLE documents OWNER TO docs_app",
    "CREATE INDEX evil ON documents (title)",
    "CREATE POLICY evil ON documents USING (true)",
    "DROP POLICY tenant ON documents",
    "CREATE TRIGGER evil BEFORE INSERT ON documents FOR EACH ROW "
    "EXECUTE FUNCTION audit_log_append_only()",
    "COMMENT ON TABLE documents IS 'evil'",
    "DROP TABLE audit_log",
    "DROP TABLE documents CASCADE",
    "TRUNCATE documents",
    "TRUNCATE audit_log",
    "TRUNCATE outbox, cache_dirty",
)


@pytest.mark.parametrize("as_tenant", [False, True], ids=["as-itself", "as-docs_app"])
def test_it_cannot_change_the_schema(conn: psycopg.Connection[Any], as_tenant: bool) -> None:
    with conn.transaction(force_rollback=True):
        if as_tenant:
            _act_as_tenant(conn, A)
        for statement in SCHEMA_CHANGES:
            _refused(conn, statement)


def test_audit_log_stays_append_only(conn: psycopg.Connection[Any], db: str) -> None:
    with conn.transaction(force_rollback=True):
        _act_as_tenant(conn, A)
        conn.execute("INSERT INTO audit_log (org, actor, action) VALUES (%s, 'a', 'x')", (A,))
        _refused(conn, "UPDATE audit_log SET actor = 'mallory' WHERE org = %s", (A,))
        _refused(conn, "DELETE FROM audit_log WHERE org = %s", (A,))
        _refused(conn, "TRUNCATE audit_log")
    _refused(conn, "UPDATE audit_log SET actor = 'mallory'")
    _refused(conn, "DELETE FROM audit_log")
    with _admin(db) as admin:  # not even the admin rewrites it
        for statement in ("UPDATE audit_log SET actor = 'x'", "TRUNCATE audit_log"):
            with pytest.raises(psycopg.errors.RaiseException), admin.transaction():
                admin.execute(statement)


def test_consent_records_stay_append_only(conn: psycopg.Connection[Any], db: str) -> None:
    """The consent history: the runtime login appends and reads, never rewrites, and
    the stored subject and actor are pseudonyms, never the user id it wrote."""
    with conn.transaction(force_rollback=True):
        _act_as_tenant(conn, A)
        row = conn.execute(
            "INSERT INTO consent_records (org, subject, purpose, granted, policy_version, actor) "
            "VALUES (%s, 'carol', 'analytics', false, '1', 'carol') RETURNING subject, actor",
            (A,),
        ).fetchone()
        assert row is not None and row["subject"].startswith("p-"), row
        assert row["actor"] == row["subject"]
        _refused(conn, "UPDATE consent_records SET granted = true WHERE org = %s", (A,))
        _refused(conn, "DELETE FROM consent_records WHERE org = %s", (A,))
        _refused(conn, "TRUNCATE consent_records")
    with _admin(db) as admin:  # not even the admin rewrites it
        for statement in ("UPDATE consent_records SET granted = NOT granted",
                          "DELETE FROM consent_records", "TRUNCATE consent_records"):  # fmt: skip
            with pytest.raises(psycopg.errors.RaiseException), admin.transaction():
                admin.execute(statement)


# ----------------------------------------------------------------- the migrator
def test_access_reviews_stay_append_only(conn: psycopg.Connection[Any], db: str) -> None:
    """The runtime login records a review and reads it back, and nothing more."""
    with conn.transaction(force_rollback=True):
        _act_as_tenant(conn, A)
        conn.execute(
            "INSERT INTO access_reviews (org, id, reviewed_by, notes) VALUES (%s, 'r2', 'a', '')",
            (A,),
        )
        assert conn.execute("SELECT count(*) AS n FROM access_reviews").fetchone()["n"] == 2
        _refused(conn, "UPDATE access_reviews SET notes = 'forged' WHERE org = %s", (A,))
        _refused(conn, "DELETE FROM access_reviews WHERE org = %s", (A,))
        _refused(conn, "TRUNCATE access_reviews")
    with _admin(db) as admin:  # not even the admin rewrites one
        for statement in ("UPDATE access_reviews SET notes = 'x'", "DELETE FROM access_reviews"):
            with pytest.raises(psycopg.errors.RaiseException), admin.transaction():
                admin.execute(statement)


def test_roles_are_created_once_even_by_concurrent_migrations() -> None:
    """Roles are cluster-global: several databases migrated at once, with a
    runtime login nobody created yet, all succeed and share the roles."""
    login = f"docs_rt_{uuid.uuid4().hex[:8]}"
    names = [f"docs_t_roles_{uuid.uuid4().hex[:8]}" for _ in range(3)]
    with psycopg.connect(ADMIN_DATABASE_URL, autocommit=True) as admin:
        for name in names:
            admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    urls = [database_url_for(name) for name in names]
    errors: list[BaseException] = []

    def run(url: str) -> None:
        try:
            migrate(url, runtime_user=login)
        except BaseException as exc:
            errors.append(exc)

    try:
        threads = [threading.Thread(target=run, args=(u,)) for u in urls]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors, errors
        for url in urls:
            assert migrate(url, runtime_user=login) == []
            with psycopg.connect(
                Settings(database_url=url, db_runtime_user=login).runtime_database_url
            ) as c:
                c.execute("SET ROLE docs_app")
        with pytest.raises(psycopg.errors.RaiseException, match="runtime login"):
            migrate(urls[0], runtime_user="docs_owner")
    finally:
        for url in urls:
            drop_database(url)
        with psycopg.connect(ADMIN_DATABASE_URL, autocommit=True) as admin:
            admin.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(login)))
