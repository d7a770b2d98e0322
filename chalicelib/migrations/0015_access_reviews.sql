-- Access reviews (docs/compliance.md, "Access reviews"): an admin's attestation
-- that the org's effective access was reviewed, with what it revoked.
--
-- * access_reviews: append-only (a trigger refuses UPDATE and DELETE for every
--   role, the owner included; the runtime role is granted SELECT and INSERT
--   only), tenant data under forced row-level security like every other table.
--   The attestation's audit row is written in the same transaction.
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
