-- Access reviews (docs/compliance.md, "Access reviews"): an admin's attestation
-- that the org's effective access was reviewed, with what it revoked.
--
-- * access_reviews: append-only (a trigger refuses UPDATE and DELETE for every
--   role, the owner included; the runtime role is granted SELECT and INSERT
--   only), tenant data under forced row-level security like every other table.
--   The attestation's audit row is written in the same transaction.
--
-- * the reviewer and every revoked grantee are stored as the org's audit
--   pseudonyms (audit_actors, migration 0009), swapped in by a trigger before
--   the row is stored, as consent_records does: erasing a user deletes their
--   pseudonym's mapping, which leaves these rows naming nobody without
--   rewriting one.
--
-- The review itself (GET /access-review) reads documents, document_grants,
-- audit_log and audit_actors, which the runtime role may read already.
--
-- Expand-only: a new table, a function, a trigger.

CREATE TABLE IF NOT EXISTS access_reviews (
  org          text        NOT NULL,
  id           text        NOT NULL,
  reviewed_by  text        NOT NULL,
  reviewed_at  timestamptz NOT NULL DEFAULT now(),
  notes        text        NOT NULL,
  revoked      jsonb       NOT NULL DEFAULT '[]'::jsonb,
  request_id   text,
  PRIMARY KEY (org, id)
);
CREATE INDEX IF NOT EXISTS access_reviews_newest ON access_reviews (org, reviewed_at DESC);

CREATE OR REPLACE FUNCTION docs_access_review_pseudonyms() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
BEGIN
  NEW.reviewed_by := audit_pseudonym_for(NEW.org, NEW.reviewed_by);
  NEW.revoked := COALESCE((
    SELECT jsonb_agg(jsonb_build_object(
             'document', e ->> 'document',
             'user', audit_pseudonym_for(NEW.org, e ->> 'user')) ORDER BY n)
    FROM jsonb_array_elements(NEW.revoked) WITH ORDINALITY AS t(e, n)
  ), '[]'::jsonb);
  RETURN NEW;
END $$;
DROP TRIGGER IF EXISTS access_reviews_pseudonyms ON access_reviews;
CREATE TRIGGER access_reviews_pseudonyms BEFORE INSERT ON access_reviews
  FOR EACH ROW EXECUTE FUNCTION docs_access_review_pseudonyms();

CREATE OR REPLACE FUNCTION access_reviews_append_only() RETURNS trigger
LANGUAGE plpgsql SET search_path = public, pg_temp AS $$
BEGIN
  RAISE EXCEPTION 'access_reviews is append-only';
END $$;
DROP TRIGGER IF EXISTS access_reviews_no_rewrite ON access_reviews;
CREATE TRIGGER access_reviews_no_rewrite BEFORE UPDATE OR DELETE ON access_reviews
  FOR EACH ROW EXECUTE FUNCTION access_reviews_append_only();

GRANT SELECT, INSERT ON access_reviews TO docs_app;

ALTER TABLE access_reviews ENABLE ROW LEVEL SECURITY;
ALTER TABLE access_reviews FORCE ROW LEVEL SECURITY;
DROP POLICY IF EXISTS tenant ON access_reviews;
CREATE POLICY tenant ON access_reviews TO docs_app
  USING (org = current_setting('app.org', true)) WITH CHECK (org = current_setting('app.org', true));

-- as in 0006: the definer function executable by docs_app only, owned by docs_maintenance
GRANT CREATE ON SCHEMA public TO docs_maintenance;
DO $$
DECLARE
  fn regprocedure;
BEGIN
  FOR fn IN SELECT p.oid::regprocedure FROM pg_proc p
            WHERE p.pronamespace = 'public'::regnamespace AND p.prosecdef
              AND p.proname IN ('docs_access_review_pseudonyms')
  LOOP
    EXECUTE format('REVOKE ALL ON FUNCTION %s FROM PUBLIC', fn);
    EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO docs_app', fn);
    EXECUTE format('ALTER FUNCTION %s OWNER TO docs_maintenance', fn);
  END LOOP;
END $$;
REVOKE CREATE ON SCHEMA public FROM docs_maintenance;
