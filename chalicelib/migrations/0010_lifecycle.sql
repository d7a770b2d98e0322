-- Lifecycle (docs/compliance.md, "Retention and purge"): documents deleted longer
-- ago than the restore window (DOCS_DELETE_RETENTION_DAYS) are purged by a
-- scheduled job (functions/purge.py, service_layer/purge.py), and personal-data
-- fields are re-encrypted after a key rotation (cli pii-reencrypt).
--
-- Runs as docs_owner (after 0006).  Expand-only: one table, one partial index,
-- maintenance functions and the privileges they need.
--
-- A purge is one tenant transaction (app.org set) per document: it records a
-- document_purges row (the content object keys to delete, so none is ever lost),
-- a 'purge' outbox row (the search sync deletes the index entry) and a
-- pseudonymous audit row, then removes every database row of the document
-- through docs_purge_rows.  The objects, cache entries and real-time
-- subscriptions are removed afterwards, and the document_purges row deleted
-- last: a crash at any point leaves either nothing done or a task to finish.

CREATE TABLE IF NOT EXISTS document_purges (
  id              bigserial   PRIMARY KEY,
  org             text        NOT NULL,
  doc_id          text        NOT NULL,
  keys            text[]      NOT NULL DEFAULT '{}',  -- content object keys (every version goes)
  purged_at       timestamptz NOT NULL DEFAULT now(),
  attempts        integer     NOT NULL DEFAULT 0,
  next_attempt_at timestamptz NOT NULL DEFAULT now(),
  last_error      text
);
CREATE INDEX IF NOT EXISTS document_purges_due ON document_purges (next_attempt_at, id);
-- the purge finds documents deleted before the cutoff without a scan of live ones
CREATE INDEX IF NOT EXISTS documents_deleted ON documents (deleted_at)
  WHERE deleted_at IS NOT NULL;

GRANT SELECT, INSERT, UPDATE, DELETE ON document_purges TO docs_app;
GRANT USAGE ON SEQUENCE document_purges_id_seq TO docs_app;
ALTER TABLE document_purges ENABLE ROW LEVEL SECURITY;
ALTER TABLE document_purges FORCE ROW LEVEL SECURITY;
DROP POLICY IF EXISTS tenant ON document_purges;
CREATE POLICY tenant ON document_purges TO docs_app
  USING (org = current_setting('app.org', true)) WITH CHECK (org = current_setting('app.org', true));

-- docs_maintenance: what the purge functions below touch, nothing more.  Its
-- policies hold only while one of its functions runs (current_user).
GRANT SELECT (id, org, doc_id, attempts, next_attempt_at), UPDATE (next_attempt_at)
  ON document_purges TO docs_maintenance;
DROP POLICY IF EXISTS maintenance ON document_purges;
CREATE POLICY maintenance ON document_purges TO docs_maintenance
  USING (current_user = 'docs_maintenance') WITH CHECK (current_user = 'docs_maintenance');

GRANT DELETE ON documents TO docs_maintenance;
DROP POLICY IF EXISTS maintenance_purge ON documents;
CREATE POLICY maintenance_purge ON documents FOR DELETE TO docs_maintenance
  USING (current_user = 'docs_maintenance');

GRANT SELECT (org, id), DELETE ON document_versions TO docs_maintenance;
DROP POLICY IF EXISTS maintenance ON document_versions;
CREATE POLICY maintenance ON document_versions TO docs_maintenance
  USING (current_user = 'docs_maintenance');

GRANT SELECT (org, doc_id), DELETE ON document_content_text TO docs_maintenance;
DROP POLICY IF EXISTS maintenance ON document_content_text;
CREATE POLICY maintenance ON document_content_text TO docs_maintenance
  USING (current_user = 'docs_maintenance');

GRANT DELETE ON content_uploads TO docs_maintenance;
DROP POLICY IF EXISTS maintenance_purge ON content_uploads;
CREATE POLICY maintenance_purge ON content_uploads FOR DELETE TO docs_maintenance
  USING (current_user = 'docs_maintenance');

-- grants (migration 0007, document permissions): the same, when the table exists
DO $$
BEGIN
  IF to_regclass('public.document_grants') IS NOT NULL THEN
    GRANT SELECT (org, doc_id), DELETE ON document_grants TO docs_maintenance;
    DROP POLICY IF EXISTS maintenance_purge ON document_grants;
    CREATE POLICY maintenance_purge ON document_grants TO docs_maintenance
      USING (current_user = 'docs_maintenance');
  END IF;
END $$;

-- documents deleted before p_cutoff, oldest deletion first (ids only, every org)
CREATE OR REPLACE FUNCTION docs_purge_due(p_cutoff timestamptz, p_limit integer)
RETURNS TABLE (org text, id text)
LANGUAGE sql SECURITY DEFINER SET search_path = public, pg_temp AS $$
  SELECT d.org, d.id FROM documents d
  WHERE d.deleted_at IS NOT NULL AND d.deleted_at < p_cutoff
  ORDER BY d.deleted_at LIMIT p_limit
$$;

-- Every database row of one document deleted before p_cutoff: the document, its
-- versions, extracted text, uploads, grants and cache-repair marks.  Only for
-- the org of the calling transaction, only a deleted document, and never with a
-- cutoff in the future: the runtime cannot use it to remove a live document.
-- Returns the number of versions removed, or -1 when the document is not due
-- (restored, reused, or purged already).
CREATE OR REPLACE FUNCTION docs_purge_rows(p_org text, p_id text, p_cutoff timestamptz)
RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
  versions bigint;
BEGIN
  IF p_org IS DISTINCT FROM current_setting('app.org', true) THEN
    RAISE EXCEPTION 'docs_purge_rows: not the transaction''s org';
  END IF;
  IF p_cutoff > now() THEN
    RAISE EXCEPTION 'docs_purge_rows: the cutoff is in the future';
  END IF;
  DELETE FROM documents d WHERE d.org = p_org AND d.id = p_id
    AND d.deleted_at IS NOT NULL AND d.deleted_at < p_cutoff;
  IF NOT FOUND THEN
    RETURN -1;
  END IF;
  DELETE FROM document_versions v WHERE v.org = p_org AND v.id = p_id;
  GET DIAGNOSTICS versions = ROW_COUNT;
  DELETE FROM document_content_text t WHERE t.org = p_org AND t.doc_id = p_id;
  DELETE FROM content_uploads u WHERE u.org = p_org AND u.doc_id = p_id;
  DELETE FROM cache_dirty c WHERE c.org = p_org AND c.doc_id = p_id;
  IF to_regclass('public.document_grants') IS NOT NULL THEN
    EXECUTE 'DELETE FROM document_grants g WHERE g.org = $1 AND g.doc_id = $2'
      USING p_org, p_id;
  END IF;
  RETURN versions;
END $$;

-- purge tasks due, leased for p_lease (a concurrent run skips them; a crashed
-- run's tasks come back when the lease ends)
CREATE OR REPLACE FUNCTION docs_purge_pending(p_limit integer, p_lease interval)
RETURNS TABLE (id bigint, org text, doc_id text, attempts integer)
LANGUAGE sql SECURITY DEFINER SET search_path = public, pg_temp AS $$
  UPDATE document_purges p SET next_attempt_at = now() + p_lease
  WHERE p.id IN (SELECT q.id FROM document_purges q WHERE q.next_attempt_at <= now()
                 ORDER BY q.next_attempt_at, q.id LIMIT p_limit FOR UPDATE SKIP LOCKED)
  RETURNING p.id, p.org, p.doc_id, p.attempts
$$;

-- re-encryption after a key rotation: every document's (org, id), deleted ones too
CREATE OR REPLACE FUNCTION docs_document_ids(p_limit integer, p_after_org text DEFAULT NULL,
                                             p_after_id text DEFAULT NULL)
RETURNS TABLE (org text, id text)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
#variable_conflict use_column
BEGIN
  IF p_after_org IS NULL THEN
    RETURN QUERY SELECT d.org, d.id FROM documents d ORDER BY d.org, d.id LIMIT p_limit;
  ELSE
    RETURN QUERY SELECT d.org, d.id FROM documents d
      WHERE (d.org, d.id) > (p_after_org, p_after_id) ORDER BY d.org, d.id LIMIT p_limit;
  END IF;
END $$;

-- as in 0006: executable by docs_app only, owned by docs_maintenance
GRANT CREATE ON SCHEMA public TO docs_maintenance;
DO $$
DECLARE
  fn regprocedure;
BEGIN
  FOR fn IN SELECT p.oid::regprocedure FROM pg_proc p
            WHERE p.pronamespace = 'public'::regnamespace AND p.prosecdef
              AND p.proname IN ('docs_purge_due', 'docs_purge_rows', 'docs_purge_pending',
                                'docs_document_ids')
  LOOP
    EXECUTE format('REVOKE ALL ON FUNCTION %s FROM PUBLIC', fn);
    EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO docs_app', fn);
    EXECUTE format('ALTER FUNCTION %s OWNER TO docs_maintenance', fn);
  END LOOP;
END $$;
REVOKE CREATE ON SCHEMA public FROM docs_maintenance;
