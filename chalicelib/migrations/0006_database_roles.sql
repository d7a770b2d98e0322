-- The database enforces tenancy (docs/database-roles.md).
--
-- Roles (created, and granted to the logins, by the migrator before any file:
-- chalicelib/adapters/postgres.py, _ROLES):
--   docs_owner        NOLOGIN  owns the schema and every object; migrations run as it
--   docs_app          NOLOGIN  the tenant role: each transaction SETs it with app.org
--   docs_maintenance  NOLOGIN  owns the SECURITY DEFINER maintenance functions below;
--                              may read only ids / versions / status columns
--   runtime login     LOGIN NOINHERIT, member of docs_app only, owns nothing
--
-- This file runs as the migrator's session user (it must own, or be a superuser
-- over, the objects created before docs_owner existed); it re-owns them, then
-- continues as docs_owner.  Files after this one run as docs_owner.
--
-- Expand-only: nothing is dropped or renamed; idempotency_keys gains a nullable
-- org column (rows written before it are invisible to the tenant role and
-- expire within 24 h).  Privileges docs_app no longer needs are revoked: the
-- work that used them (search sync, cache repair, upload expiry) now goes
-- through the functions below.

-- 1. Re-own every table, view, sequence and function of the schema.
DO $$
DECLARE
  r record;
BEGIN
  FOR r IN
    SELECT c.oid::regclass AS rel,
           CASE c.relkind WHEN 'S' THEN 'SEQUENCE' WHEN 'v' THEN 'VIEW'
                          WHEN 'm' THEN 'MATERIALIZED VIEW' WHEN 'f' THEN 'FOREIGN TABLE'
                          ELSE 'TABLE' END AS kind
    FROM pg_class c
    WHERE c.relnamespace = 'public'::regnamespace
      AND c.relkind IN ('r', 'p', 'v', 'm', 'f', 'S')
      AND c.relowner <> 'docs_owner'::regrole
      -- sequences of serial/identity columns follow their table; extension objects stay
      AND NOT EXISTS (SELECT FROM pg_depend d WHERE d.classid = 'pg_class'::regclass
                      AND d.objid = c.oid AND d.deptype IN ('a', 'i', 'e'))
  LOOP
    EXECUTE format('ALTER %s %s OWNER TO docs_owner', r.kind, r.rel);
  END LOOP;
  FOR r IN
    SELECT p.oid::regprocedure AS fn FROM pg_proc p
    WHERE p.pronamespace = 'public'::regnamespace AND p.prokind IN ('f', 'p')
      AND p.proowner <> 'docs_owner'::regrole
      AND NOT EXISTS (SELECT FROM pg_depend d WHERE d.classid = 'pg_proc'::regclass
                      AND d.objid = p.oid AND d.deptype = 'e')
  LOOP
    EXECUTE format('ALTER ROUTINE %s OWNER TO docs_owner', r.fn);
  END LOOP;
  -- nobody but the owner creates objects in the schema (PostgreSQL < 15 let PUBLIC)
  REVOKE CREATE ON SCHEMA public FROM PUBLIC;
  -- the runtime login (named by the migrator) holds no privilege of its own
  IF coalesce(current_setting('docs.runtime_login', true), '') <> '' THEN
    EXECUTE format('REVOKE ALL ON ALL TABLES IN SCHEMA public FROM %I',
                   current_setting('docs.runtime_login'));
    EXECUTE format('REVOKE ALL ON ALL SEQUENCES IN SCHEMA public FROM %I',
                   current_setting('docs.runtime_login'));
    EXECUTE format('REVOKE ALL ON ALL FUNCTIONS IN SCHEMA public FROM %I',
                   current_setting('docs.runtime_login'));
  END IF;
END $$;

SET LOCAL ROLE docs_owner;

-- functions docs_owner creates from now on are not executable by PUBLIC
ALTER DEFAULT PRIVILEGES REVOKE EXECUTE ON FUNCTIONS FROM PUBLIC;

-- 2. idempotency_keys belongs to an org (filled by chalicelib/idempotency.py).
ALTER TABLE idempotency_keys ADD COLUMN IF NOT EXISTS org text;
DO $$
BEGIN
  ALTER TABLE idempotency_keys ADD CONSTRAINT idempotency_keys_org_present
    CHECK (org IS NOT NULL) NOT VALID;  -- new rows; old ones expire
EXCEPTION WHEN duplicate_object THEN NULL;
END $$;

-- 3. Row-level security, enabled and forced (the owner too) on every table but
--    schema_migrations.  No policy = no rows.
DO $$
DECLARE
  t regclass;
BEGIN
  FOR t IN SELECT c.oid::regclass FROM pg_class c
           WHERE c.relnamespace = 'public'::regnamespace AND c.relkind IN ('r', 'p')
             AND c.relname <> 'schema_migrations'
  LOOP
    EXECUTE format('ALTER TABLE %s ENABLE ROW LEVEL SECURITY', t);
    EXECUTE format('ALTER TABLE %s FORCE ROW LEVEL SECURITY', t);
  END LOOP;
END $$;

DROP POLICY IF EXISTS tenant ON idempotency_keys;
CREATE POLICY tenant ON idempotency_keys TO docs_app
  USING (org = current_setting('app.org', true)) WITH CHECK (org = current_setting('app.org', true));
DROP POLICY IF EXISTS tenant ON cache_dirty;
CREATE POLICY tenant ON cache_dirty TO docs_app
  USING (org = current_setting('app.org', true)) WITH CHECK (org = current_setting('app.org', true));
-- the changes feed reads the pruned-range watermark (no tenant data: one row)
DROP POLICY IF EXISTS feed_watermark ON outbox_pruned;
CREATE POLICY feed_watermark ON outbox_pruned FOR SELECT TO docs_app USING (true);

-- 4. The tenant role's privileges, and nothing more.
REVOKE ALL ON ALL TABLES IN SCHEMA public FROM PUBLIC, docs_app;
REVOKE ALL ON ALL SEQUENCES IN SCHEMA public FROM PUBLIC, docs_app;
GRANT SELECT, INSERT, UPDATE ON documents, document_versions TO docs_app;
GRANT SELECT, INSERT ON outbox, audit_log TO docs_app;
GRANT SELECT, INSERT, UPDATE, DELETE ON idempotency_keys TO docs_app;
GRANT SELECT, INSERT, UPDATE ON cache_dirty TO docs_app;
GRANT SELECT, INSERT, UPDATE ON content_uploads TO docs_app;
GRANT SELECT, INSERT ON document_content_text TO docs_app;
GRANT SELECT ON outbox_pruned TO docs_app;
GRANT USAGE ON SEQUENCE outbox_seq_seq, audit_log_id_seq TO docs_app;

-- audit_log: append-only for everyone, TRUNCATE included
DROP TRIGGER IF EXISTS audit_log_no_truncate ON audit_log;
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
  FOR EACH STATEMENT EXECUTE FUNCTION audit_log_append_only();

-- 5. docs_maintenance: what the maintenance functions may touch.  Its policies
--    hold only while one of its functions runs (current_user), so docs_owner,
--    which is a member (to manage the functions), still sees no tenant rows.
GRANT SELECT, UPDATE, DELETE ON outbox TO docs_maintenance;
GRANT SELECT, INSERT, UPDATE ON search_dead_letters TO docs_maintenance;
GRANT SELECT, INSERT, UPDATE, DELETE ON search_indexes TO docs_maintenance;
GRANT SELECT, INSERT, UPDATE ON outbox_pruned TO docs_maintenance;
GRANT SELECT (org, doc_id, version, created_at), DELETE ON cache_dirty TO docs_maintenance;
GRANT SELECT (org, upload_id, doc_id, status, expires_at) ON content_uploads TO docs_maintenance;
GRANT SELECT (org, id, deleted_at) ON documents TO docs_maintenance;

DROP POLICY IF EXISTS maintenance ON outbox;
CREATE POLICY maintenance ON outbox TO docs_maintenance
  USING (current_user = 'docs_maintenance') WITH CHECK (current_user = 'docs_maintenance');
DROP POLICY IF EXISTS maintenance ON search_dead_letters;
CREATE POLICY maintenance ON search_dead_letters TO docs_maintenance
  USING (current_user = 'docs_maintenance') WITH CHECK (current_user = 'docs_maintenance');
DROP POLICY IF EXISTS maintenance ON search_indexes;
CREATE POLICY maintenance ON search_indexes TO docs_maintenance
  USING (current_user = 'docs_maintenance') WITH CHECK (current_user = 'docs_maintenance');
DROP POLICY IF EXISTS maintenance ON outbox_pruned;
CREATE POLICY maintenance ON outbox_pruned TO docs_maintenance
  USING (current_user = 'docs_maintenance') WITH CHECK (current_user = 'docs_maintenance');
DROP POLICY IF EXISTS maintenance ON cache_dirty;
CREATE POLICY maintenance ON cache_dirty TO docs_maintenance
  USING (current_user = 'docs_maintenance');
DROP POLICY IF EXISTS maintenance ON content_uploads;
CREATE POLICY maintenance ON content_uploads FOR SELECT TO docs_maintenance
  USING (current_user = 'docs_maintenance');
DROP POLICY IF EXISTS maintenance ON documents;
CREATE POLICY maintenance ON documents FOR SELECT TO docs_maintenance
  USING (current_user = 'docs_maintenance');

-- 6. Maintenance functions: cross-org, ids/versions/status only, never content.
--    SECURITY DEFINER as docs_maintenance, search_path pinned, executable by
--    docs_app only.  Content is then read in tenant-scoped statements (app.org
--    set to the row's org) by the caller.

-- the search sync: claim due outbox rows (locked until the caller's transaction ends)
CREATE OR REPLACE FUNCTION docs_outbox_claim(p_limit integer, p_org text DEFAULT NULL,
                                             p_doc_id text DEFAULT NULL)
RETURNS TABLE (seq bigint, org text, doc_id text, version bigint, op text, attempts integer,
               created_at timestamptz)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
#variable_conflict use_column
BEGIN
  IF p_org IS NULL THEN
    RETURN QUERY SELECT o.seq, o.org, o.doc_id, o.version, o.op, o.attempts, o.created_at
      FROM outbox o WHERE o.processed_at IS NULL AND o.next_attempt_at <= now()
      ORDER BY o.seq LIMIT p_limit FOR UPDATE SKIP LOCKED;
  ELSE
    RETURN QUERY SELECT o.seq, o.org, o.doc_id, o.version, o.op, o.attempts, o.created_at
      FROM outbox o WHERE o.processed_at IS NULL AND o.next_attempt_at <= now()
        AND o.org = p_org AND o.doc_id = p_doc_id
      ORDER BY o.seq LIMIT p_limit FOR UPDATE SKIP LOCKED;
  END IF;
END $$;

CREATE OR REPLACE FUNCTION docs_outbox_done(p_seqs bigint[]) RETURNS void
LANGUAGE sql SECURITY DEFINER SET search_path = public, pg_temp AS $$
  UPDATE outbox SET processed_at = now(), last_error = NULL WHERE seq = ANY(p_seqs)
$$;

CREATE OR REPLACE FUNCTION docs_outbox_retry(p_seqs bigint[], p_delays double precision[],
                                             p_reason text, p_counted boolean) RETURNS void
LANGUAGE sql SECURITY DEFINER SET search_path = public, pg_temp AS $$
  UPDATE outbox o SET attempts = o.attempts + CASE WHEN p_counted THEN 1 ELSE 0 END,
         last_error = left(p_reason, 2000),
         next_attempt_at = now() + make_interval(secs => d.delay)
  FROM unnest(p_seqs, p_delays) AS d(seq, delay) WHERE o.seq = d.seq
$$;

CREATE OR REPLACE FUNCTION docs_outbox_dead_letter(p_seqs bigint[], p_reason text) RETURNS void
LANGUAGE sql SECURITY DEFINER SET search_path = public, pg_temp AS $$
  INSERT INTO search_dead_letters (seq, org, doc_id, version, op, attempts, reason)
  SELECT o.seq, o.org, o.doc_id, o.version, o.op, o.attempts + 1, left(p_reason, 2000)
  FROM outbox o WHERE o.seq = ANY(p_seqs)
  ON CONFLICT (seq) DO UPDATE SET attempts = EXCLUDED.attempts, reason = EXCLUDED.reason,
    failed_at = now(), requeued_at = NULL;
  UPDATE outbox SET processed_at = now(), attempts = attempts + 1, last_error = left(p_reason, 2000)
  WHERE seq = ANY(p_seqs);
$$;

CREATE OR REPLACE FUNCTION docs_outbox_wake_all() RETURNS bigint
LANGUAGE sql SECURITY DEFINER SET search_path = public, pg_temp AS $$
  WITH woken AS (UPDATE outbox SET next_attempt_at = now()
                 WHERE processed_at IS NULL AND next_attempt_at > now() RETURNING 1)
  SELECT count(*) FROM woken
$$;

CREATE OR REPLACE FUNCTION docs_outbox_stats()
RETURNS TABLE (lag_s double precision, backlog bigint, dead_letters bigint)
LANGUAGE sql SECURITY DEFINER SET search_path = public, pg_temp AS $$
  SELECT (SELECT EXTRACT(EPOCH FROM now() - min(o.created_at))::float8
            FROM outbox o WHERE o.processed_at IS NULL),
         (SELECT count(*) FROM outbox o WHERE o.processed_at IS NULL),
         (SELECT count(*) FROM search_dead_letters s WHERE s.requeued_at IS NULL)
$$;

-- retention: processed rows created before now() - p_older_than, one batch
CREATE OR REPLACE FUNCTION docs_outbox_prune(p_older_than interval, p_batch integer)
RETURNS bigint
LANGUAGE sql SECURITY DEFINER SET search_path = public, pg_temp AS $$
  WITH gone AS (
    DELETE FROM outbox WHERE seq IN (
      SELECT o.seq FROM outbox o WHERE o.processed_at IS NOT NULL
        AND o.created_at < now() - p_older_than
      ORDER BY o.seq LIMIT p_batch FOR UPDATE SKIP LOCKED)
    RETURNING txid, seq),
  top AS (SELECT txid, seq FROM gone ORDER BY txid DESC, seq DESC LIMIT 1),
  mark AS (
    INSERT INTO outbox_pruned (id, txid, seq) SELECT 1, txid, seq FROM top
    ON CONFLICT (id) DO UPDATE SET txid = EXCLUDED.txid, seq = EXCLUDED.seq, at = now()
    WHERE (outbox_pruned.txid, outbox_pruned.seq) < (EXCLUDED.txid, EXCLUDED.seq))
  SELECT count(*) FROM gone
$$;

CREATE OR REPLACE FUNCTION docs_dead_letters(p_org text DEFAULT NULL, p_limit integer DEFAULT 1000)
RETURNS TABLE (seq bigint, org text, doc_id text, version bigint, op text, attempts integer,
               reason text, failed_at timestamptz)
LANGUAGE sql SECURITY DEFINER SET search_path = public, pg_temp AS $$
  SELECT s.seq, s.org, s.doc_id, s.version, s.op, s.attempts, s.reason, s.failed_at
  FROM search_dead_letters s
  WHERE s.requeued_at IS NULL AND (p_org IS NULL OR s.org = p_org)
  ORDER BY s.failed_at LIMIT p_limit
$$;

CREATE OR REPLACE FUNCTION docs_requeue_dead_letters(p_org text DEFAULT NULL) RETURNS bigint
LANGUAGE sql SECURITY DEFINER SET search_path = public, pg_temp AS $$
  WITH requeued AS (
    UPDATE search_dead_letters SET requeued_at = now()
    WHERE requeued_at IS NULL AND (p_org IS NULL OR org = p_org) RETURNING seq),
  woken AS (
    UPDATE outbox SET processed_at = NULL, attempts = 0, next_attempt_at = now()
    WHERE seq IN (SELECT seq FROM requeued) RETURNING 1)
  SELECT count(*) FROM requeued
$$;

-- reindex: the index registry, live document ids, documents changed since a registration
CREATE OR REPLACE FUNCTION docs_search_building(p_alias text) RETURNS SETOF text
LANGUAGE sql SECURITY DEFINER SET search_path = public, pg_temp AS $$
  SELECT name FROM search_indexes WHERE alias = p_alias AND state = 'building'
$$;

CREATE OR REPLACE FUNCTION docs_search_expired(p_alias text) RETURNS SETOF text
LANGUAGE sql SECURITY DEFINER SET search_path = public, pg_temp AS $$
  SELECT name FROM search_indexes
  WHERE alias = p_alias AND state = 'retired' AND drop_after <= now()
$$;

CREATE OR REPLACE FUNCTION docs_search_register(p_name text, p_alias text) RETURNS void
LANGUAGE sql SECURITY DEFINER SET search_path = public, pg_temp AS $$
  INSERT INTO search_indexes (name, alias, state) VALUES (p_name, p_alias, 'building')
  ON CONFLICT (name) DO UPDATE SET state = 'building', drop_after = NULL,
    from_txid = pg_snapshot_xmin(pg_current_snapshot())
$$;

CREATE OR REPLACE FUNCTION docs_search_retire(p_new text, p_old text, p_alias text,
                                              p_grace interval) RETURNS void
LANGUAGE sql SECURITY DEFINER SET search_path = public, pg_temp AS $$
  DELETE FROM search_indexes WHERE name = p_new;
  INSERT INTO search_indexes (name, alias, state, drop_after)
  SELECT p_old, p_alias, 'retired', now() + p_grace WHERE p_old IS NOT NULL
  ON CONFLICT (name) DO UPDATE SET state = 'retired', drop_after = EXCLUDED.drop_after;
$$;

CREATE OR REPLACE FUNCTION docs_search_abandon(p_name text) RETURNS void
LANGUAGE sql SECURITY DEFINER SET search_path = public, pg_temp AS $$
  DELETE FROM search_indexes WHERE name = p_name
$$;

CREATE OR REPLACE FUNCTION docs_live_document_ids(p_limit integer, p_after_org text DEFAULT NULL,
                                                  p_after_id text DEFAULT NULL)
RETURNS TABLE (org text, id text)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
#variable_conflict use_column
BEGIN
  IF p_after_org IS NULL THEN
    RETURN QUERY SELECT d.org, d.id FROM documents d WHERE d.deleted_at IS NULL
      ORDER BY d.org, d.id LIMIT p_limit;
  ELSE
    RETURN QUERY SELECT d.org, d.id FROM documents d WHERE d.deleted_at IS NULL
      AND (d.org, d.id) > (p_after_org, p_after_id) ORDER BY d.org, d.id LIMIT p_limit;
  END IF;
END $$;

CREATE OR REPLACE FUNCTION docs_count_live_documents() RETURNS bigint
LANGUAGE sql SECURITY DEFINER SET search_path = public, pg_temp AS $$
  SELECT count(*) FROM documents WHERE deleted_at IS NULL
$$;

CREATE OR REPLACE FUNCTION docs_outbox_changed_since(p_name text)
RETURNS TABLE (org text, doc_id text, version bigint)
LANGUAGE sql SECURITY DEFINER SET search_path = public, pg_temp AS $$
  SELECT o.org, o.doc_id, max(o.version) FROM outbox o
  JOIN search_indexes s ON s.name = p_name WHERE o.txid >= s.from_txid
  GROUP BY o.org, o.doc_id
$$;

-- cache repair: the queue of documents written while Redis was unreachable
CREATE OR REPLACE FUNCTION docs_cache_dirty(p_limit integer)
RETURNS TABLE (org text, doc_id text, version bigint)
LANGUAGE sql SECURITY DEFINER SET search_path = public, pg_temp AS $$
  SELECT c.org, c.doc_id, c.version FROM cache_dirty c ORDER BY c.created_at LIMIT p_limit
$$;

CREATE OR REPLACE FUNCTION docs_cache_clear_dirty(p_orgs text[], p_doc_ids text[],
                                                  p_versions bigint[]) RETURNS void
LANGUAGE sql SECURITY DEFINER SET search_path = public, pg_temp AS $$
  DELETE FROM cache_dirty c USING unnest(p_orgs, p_doc_ids, p_versions) AS k(org, doc_id, version)
  WHERE c.org = k.org AND c.doc_id = k.doc_id AND c.version <= k.version
$$;

-- upload expiry: pending uploads of every org whose URL expired before a cutoff
CREATE OR REPLACE FUNCTION docs_stale_uploads(p_cutoff timestamptz, p_limit integer)
RETURNS TABLE (org text, upload_id text, doc_id text)
LANGUAGE sql SECURITY DEFINER SET search_path = public, pg_temp AS $$
  SELECT u.org, u.upload_id, u.doc_id FROM content_uploads u
  WHERE u.status = 'pending' AND u.expires_at < p_cutoff ORDER BY u.expires_at LIMIT p_limit
$$;

-- (a new owner needs CREATE on the schema at the moment it takes a function over)
GRANT CREATE ON SCHEMA public TO docs_maintenance;
DO $$
DECLARE
  fn regprocedure;
BEGIN
  FOR fn IN SELECT p.oid::regprocedure FROM pg_proc p
            WHERE p.pronamespace = 'public'::regnamespace AND p.prosecdef
  LOOP
    EXECUTE format('REVOKE ALL ON FUNCTION %s FROM PUBLIC', fn);
    EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO docs_app', fn);
    EXECUTE format('ALTER FUNCTION %s OWNER TO docs_maintenance', fn);
  END LOOP;
END $$;
REVOKE CREATE ON SCHEMA public FROM docs_maintenance;
