-- Consent records (docs/compliance.md, "Consent records"): per user and purpose,
-- granted or withdrawn, when, by whom and under which policy version.
--
-- consent_records is an append-only history: the current state of a purpose is
-- its newest row.  The subject and the actor are stored as the org's audit
-- pseudonyms (audit_actors, migration 0009), swapped in by a trigger on every
-- insert path, exactly as the audit trail's actor is: reads join the mapping,
-- and an erasure, which deletes the mapping, leaves the history in place but
-- tied to nobody (pseudonymised) without rewriting a row.
--
-- Runs as docs_owner (after 0006).  Expand-only: one table, its index, two
-- trigger functions and the privileges they need.  The runtime login may read
-- and append, never rewrite: no UPDATE or DELETE privilege, and a trigger that
-- refuses UPDATE, DELETE and TRUNCATE to every role, the owner included.

CREATE TABLE IF NOT EXISTS consent_records (
  id              bigserial   PRIMARY KEY,
  org             text        NOT NULL,
  subject         text        NOT NULL,  -- the user's audit pseudonym
  purpose         text        NOT NULL,
  granted         boolean     NOT NULL,
  policy_version  text        NOT NULL,
  actor           text        NOT NULL,  -- who recorded it: an audit pseudonym too
  request_id      text,
  at              timestamptz NOT NULL DEFAULT now()
);
-- the current state: the newest row of each purpose of one subject
CREATE INDEX IF NOT EXISTS consent_records_subject
  ON consent_records (org, subject, purpose, id DESC);

-- user ids become pseudonyms before the row is stored; the database's clock dates it
CREATE OR REPLACE FUNCTION docs_consent_pseudonyms() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
BEGIN
  NEW.subject := audit_pseudonym_for(NEW.org, NEW.subject);
  NEW.actor := audit_pseudonym_for(NEW.org, NEW.actor);
  NEW.at := now();
  RETURN NEW;
END $$;
DROP TRIGGER IF EXISTS consent_records_pseudonyms ON consent_records;
CREATE TRIGGER consent_records_pseudonyms BEFORE INSERT ON consent_records
  FOR EACH ROW EXECUTE FUNCTION docs_consent_pseudonyms();

CREATE OR REPLACE FUNCTION consent_records_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'consent_records is append-only';
END $$;
DROP TRIGGER IF EXISTS consent_records_no_rewrite ON consent_records;
CREATE TRIGGER consent_records_no_rewrite BEFORE UPDATE OR DELETE ON consent_records
  FOR EACH ROW EXECUTE FUNCTION consent_records_append_only();
DROP TRIGGER IF EXISTS consent_records_no_truncate ON consent_records;
CREATE TRIGGER consent_records_no_truncate BEFORE TRUNCATE ON consent_records
  FOR EACH STATEMENT EXECUTE FUNCTION consent_records_append_only();

GRANT SELECT, INSERT ON consent_records TO docs_app;
GRANT USAGE ON SEQUENCE consent_records_id_seq TO docs_app;
ALTER TABLE consent_records ENABLE ROW LEVEL SECURITY;
ALTER TABLE consent_records FORCE ROW LEVEL SECURITY;
DROP POLICY IF EXISTS tenant ON consent_records;
CREATE POLICY tenant ON consent_records TO docs_app
  USING (org = current_setting('app.org', true)) WITH CHECK (org = current_setting('app.org', true));

-- as in 0006: the definer function executable by docs_app only, owned by docs_maintenance
GRANT CREATE ON SCHEMA public TO docs_maintenance;
DO $$
DECLARE
  fn regprocedure;
BEGIN
  FOR fn IN SELECT p.oid::regprocedure FROM pg_proc p
            WHERE p.pronamespace = 'public'::regnamespace AND p.prosecdef
              AND p.proname IN ('docs_consent_pseudonyms')
  LOOP
    EXECUTE format('REVOKE ALL ON FUNCTION %s FROM PUBLIC', fn);
    EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO docs_app', fn);
    EXECUTE format('ALTER FUNCTION %s OWNER TO docs_maintenance', fn);
  END LOOP;
END $$;
REVOKE CREATE ON SCHEMA public FROM docs_maintenance;
