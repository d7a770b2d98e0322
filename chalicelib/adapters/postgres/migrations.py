"""The migration runner: applies chalicelib/migrations/*.sql in order, once each.

Runs as the migration login (the owner role ``docs_owner``), never as the
runtime login; ensures the database roles first (docs/database-roles.md).
"""

from __future__ import annotations

from pathlib import Path

import psycopg

MIGRATIONS_DIR = Path(__file__).resolve().parents[2] / "migrations"
_MIGRATION_LOCK = 0x646F6373  # "docs"


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
  IF runtime = session_user
     OR runtime IN ('docs_owner', 'docs_app', 'docs_maintenance', 'docs_audit_chainer') THEN
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
  -- owns the audit chainer (migration 0016): reads audit rows, fills their chain
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'docs_audit_chainer') THEN
    BEGIN CREATE ROLE docs_audit_chainer NOLOGIN;
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
  IF NOT EXISTS (SELECT FROM pg_auth_members WHERE roleid = 'docs_audit_chainer'::regrole
                 AND member = 'docs_owner'::regrole) THEN
    BEGIN GRANT docs_audit_chainer TO docs_owner;
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
