-- The audit trail becomes tamper-evident and pseudonymous (docs/compliance.md).
--
-- 1. audit_log gains prev_version (the version a change started from), and the
--    chain columns chain_seq (position in its org's chain) and hash.
-- 2. A BEFORE INSERT trigger, SECURITY DEFINER as docs_maintenance, runs for
--    every insert whatever its path (the service, a grant change, a purge, a
--    hand-written INSERT): it takes the org's chain-head row lock (so the
--    org's rows chain one after another), swaps the actor for the org's
--    pseudonym of that user (audit_actors, created on first use) and sets
--        hash = sha256(previous hash || canonical row)
--    with core sha256(bytea).  The canonical row is the length-prefixed text
--    of its fields (audit_canonical below; chalicelib/domain/audit.py builds
--    the same bytes to verify).  Rows are chained over the pseudonym, never
--    the user id: erasing a user deletes the audit_actors row, and the chain
--    still verifies because no chained byte changed.
-- 3. Rows written before this file are chained here, in (org, id) order.
-- 4. export_jobs (POST /me/export) and audit_exports (what the scheduled
--    export wrote to the locked bucket, with the chain head it reached).
--
-- Expand-only: new nullable columns, new tables, functions, a trigger.

ALTER TABLE audit_log ADD COLUMN IF NOT EXISTS prev_version bigint;
ALTER TABLE audit_log ADD COLUMN IF NOT EXISTS chain_seq bigint;
ALTER TABLE audit_log ADD COLUMN IF NOT EXISTS hash bytea;

CREATE TABLE IF NOT EXISTS audit_chain_heads (
  org         text        PRIMARY KEY,
  last_seq    bigint      NOT NULL,
  last_hash   bytea       NOT NULL,
  updated_at  timestamptz NOT NULL DEFAULT now()
);

-- who a pseudonym is; erasure deletes the row (nothing chained refers to the user id)
CREATE TABLE IF NOT EXISTS audit_actors (
  org         text        NOT NULL,
  user_id     text        NOT NULL,
  pseudonym   text        NOT NULL,
  created_at  timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (org, user_id),
  UNIQUE (org, pseudonym)
);

CREATE TABLE IF NOT EXISTS export_jobs (
  org           text        NOT NULL,
  id            text        NOT NULL,
  requested_by  text        NOT NULL,
  state         text        NOT NULL DEFAULT 'pending'
                            CHECK (state IN ('pending', 'ready', 'failed')),
  request_id    text,
  object_key    text,
  error         text,
  attempts      integer     NOT NULL DEFAULT 0,
  created_at    timestamptz NOT NULL DEFAULT now(),
  finished_at   timestamptz,
  PRIMARY KEY (org, id)
);
CREATE INDEX IF NOT EXISTS export_jobs_pending ON export_jobs (created_at) WHERE state = 'pending';

CREATE TABLE IF NOT EXISTS audit_exports (
  org           text        NOT NULL,
  period_start  timestamptz NOT NULL,
  period_end    timestamptz NOT NULL,
  object_key    text        NOT NULL,
  sha256        text        NOT NULL,
  rows          bigint      NOT NULL,
  first_seq     bigint,
  last_seq      bigint,
  last_hash     bytea,
  exported_at   timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (org, period_start)
);

-- one field of the canonical row: NULL is '~', anything else <length>:<text>
CREATE OR REPLACE FUNCTION audit_field(v text) RETURNS text
LANGUAGE sql IMMUTABLE SET search_path = public, pg_temp AS $$
  SELECT CASE WHEN v IS NULL THEN '~' ELSE length(v)::text || ':' || v END
$$;

CREATE OR REPLACE FUNCTION audit_canonical(r audit_log) RETURNS bytea
LANGUAGE sql STABLE SET search_path = public, pg_temp AS $$
  SELECT convert_to(
    audit_field(r.org) || audit_field(r.chain_seq::text) || audit_field(r.id::text)
    || audit_field(((extract(epoch FROM r.at) * 1000000)::bigint)::text)
    || audit_field(r.actor) || audit_field(r.action) || audit_field(r.doc_id)
    || audit_field(r.version::text) || audit_field(r.prev_version::text)
    || audit_field(r.request_id) || audit_field(r.details::text), 'UTF8')
$$;
REVOKE ALL ON FUNCTION audit_field(text), audit_canonical(audit_log) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION audit_field(text), audit_canonical(audit_log) TO docs_maintenance;

-- the pseudonym of a user in an org, created on first use (a concurrent creation
-- of the same one waits on the primary key, then finds it)
CREATE OR REPLACE FUNCTION audit_pseudonym_for(p_org text, p_user text) RETURNS text
LANGUAGE plpgsql SET search_path = public, pg_temp AS $$
DECLARE
  found text;
BEGIN
  SELECT a.pseudonym INTO found FROM audit_actors a WHERE a.org = p_org AND a.user_id = p_user;
  IF found IS NULL THEN
    INSERT INTO audit_actors (org, user_id, pseudonym)
      VALUES (p_org, p_user, 'p-' || replace(gen_random_uuid()::text, '-', ''))
      ON CONFLICT (org, user_id) DO NOTHING;
    SELECT a.pseudonym INTO found FROM audit_actors a WHERE a.org = p_org AND a.user_id = p_user;
  END IF;
  RETURN found;
END $$;
REVOKE ALL ON FUNCTION audit_pseudonym_for(text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION audit_pseudonym_for(text, text) TO docs_maintenance;

-- the tenant's way to it (erasure names its subject): the transaction's org only
CREATE OR REPLACE FUNCTION docs_audit_pseudonym(p_user text) RETURNS text
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
  tenant text := current_setting('app.org', true);
BEGIN
  IF coalesce(tenant, '') = '' THEN
    RAISE EXCEPTION 'docs_audit_pseudonym needs the org of the transaction (app.org)';
  END IF;
  RETURN audit_pseudonym_for(tenant, p_user);
END $$;

CREATE OR REPLACE FUNCTION docs_audit_chain() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
  head audit_chain_heads%ROWTYPE;
BEGIN
  -- the org's chain lock: its rows chain one after another
  SELECT * INTO head FROM audit_chain_heads h WHERE h.org = NEW.org FOR UPDATE;
  IF NOT FOUND THEN
    INSERT INTO audit_chain_heads (org, last_seq, last_hash) VALUES (NEW.org, 0, ''::bytea)
      ON CONFLICT (org) DO NOTHING;
    SELECT * INTO head FROM audit_chain_heads h WHERE h.org = NEW.org FOR UPDATE;
  END IF;
  IF NEW.actor IS NOT NULL THEN
    NEW.actor := audit_pseudonym_for(NEW.org, NEW.actor);
  END IF;
  NEW.at := now();  -- the database's clock: a writer cannot back-date a row
  NEW.chain_seq := head.last_seq + 1;
  NEW.hash := sha256(head.last_hash || audit_canonical(NEW));
  UPDATE audit_chain_heads SET last_seq = NEW.chain_seq, last_hash = NEW.hash, updated_at = now()
    WHERE org = NEW.org;
  RETURN NEW;
END $$;

-- 3. Chain the rows written before this file (the owner, for this transaction only,
--    is not subject to row-level security and may rewrite the rows once).
ALTER TABLE audit_log NO FORCE ROW LEVEL SECURITY;
ALTER TABLE audit_log DISABLE TRIGGER audit_log_no_rewrite;
DO $$
DECLARE
  r audit_log;
  head_org text := NULL;
  seq bigint := 0;
  prev bytea := ''::bytea;
  who text;
BEGIN
  FOR r IN SELECT * FROM audit_log WHERE chain_seq IS NULL ORDER BY org, id LOOP
    IF head_org IS DISTINCT FROM r.org THEN
      IF head_org IS NOT NULL THEN
        INSERT INTO audit_chain_heads (org, last_seq, last_hash) VALUES (head_org, seq, prev);
      END IF;
      head_org := r.org;
      seq := 0;
      prev := ''::bytea;
    END IF;
    SELECT a.pseudonym INTO who FROM audit_actors a WHERE a.org = r.org AND a.user_id = r.actor;
    IF who IS NULL THEN
      who := 'p-' || replace(gen_random_uuid()::text, '-', '');
      INSERT INTO audit_actors (org, user_id, pseudonym) VALUES (r.org, r.actor, who);
    END IF;
    seq := seq + 1;
    r.actor := who;
    r.chain_seq := seq;
    prev := sha256(prev || audit_canonical(r));
    UPDATE audit_log SET actor = who, chain_seq = seq, hash = prev WHERE id = r.id;
  END LOOP;
  IF head_org IS NOT NULL THEN
    INSERT INTO audit_chain_heads (org, last_seq, last_hash) VALUES (head_org, seq, prev);
  END IF;
END $$;
ALTER TABLE audit_log ENABLE TRIGGER audit_log_no_rewrite;
ALTER TABLE audit_log FORCE ROW LEVEL SECURITY;

DROP TRIGGER IF EXISTS audit_log_chain ON audit_log;
CREATE TRIGGER audit_log_chain BEFORE INSERT ON audit_log
  FOR EACH ROW EXECUTE FUNCTION docs_audit_chain();

CREATE UNIQUE INDEX IF NOT EXISTS audit_log_org_chain ON audit_log (org, chain_seq);
CREATE INDEX IF NOT EXISTS audit_log_org_doc ON audit_log (org, doc_id, chain_seq)
  WHERE doc_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS audit_log_org_actor ON audit_log (org, actor, chain_seq);

-- 4. Row-level security, enabled and forced, on the new tables.
ALTER TABLE audit_chain_heads ENABLE ROW LEVEL SECURITY;
ALTER TABLE audit_chain_heads FORCE ROW LEVEL SECURITY;
ALTER TABLE audit_actors ENABLE ROW LEVEL SECURITY;
ALTER TABLE audit_actors FORCE ROW LEVEL SECURITY;
ALTER TABLE export_jobs ENABLE ROW LEVEL SECURITY;
ALTER TABLE export_jobs FORCE ROW LEVEL SECURITY;
ALTER TABLE audit_exports ENABLE ROW LEVEL SECURITY;
ALTER TABLE audit_exports FORCE ROW LEVEL SECURITY;

-- the tenant reads its chain head (verification) and never writes it
GRANT SELECT ON audit_chain_heads TO docs_app;
DROP POLICY IF EXISTS tenant ON audit_chain_heads;
CREATE POLICY tenant ON audit_chain_heads FOR SELECT TO docs_app
  USING (org = current_setting('app.org', true));
-- the tenant resolves pseudonyms (GET /audit) and erasure deletes a mapping
GRANT SELECT, DELETE ON audit_actors TO docs_app;
DROP POLICY IF EXISTS tenant ON audit_actors;
CREATE POLICY tenant ON audit_actors TO docs_app
  USING (org = current_setting('app.org', true)) WITH CHECK (org = current_setting('app.org', true));
GRANT SELECT, INSERT, UPDATE, DELETE ON export_jobs TO docs_app;
DROP POLICY IF EXISTS tenant ON export_jobs;
CREATE POLICY tenant ON export_jobs TO docs_app
  USING (org = current_setting('app.org', true)) WITH CHECK (org = current_setting('app.org', true));
GRANT SELECT, INSERT ON audit_exports TO docs_app;
DROP POLICY IF EXISTS tenant ON audit_exports;
CREATE POLICY tenant ON audit_exports TO docs_app
  USING (org = current_setting('app.org', true)) WITH CHECK (org = current_setting('app.org', true));

-- the chain trigger (as docs_maintenance): heads and pseudonyms, nothing else
GRANT SELECT, INSERT, UPDATE ON audit_chain_heads TO docs_maintenance;
GRANT SELECT, INSERT ON audit_actors TO docs_maintenance;
GRANT SELECT (org, state, created_at, id) ON export_jobs TO docs_maintenance;
DROP POLICY IF EXISTS maintenance ON audit_chain_heads;
CREATE POLICY maintenance ON audit_chain_heads TO docs_maintenance
  USING (current_user = 'docs_maintenance') WITH CHECK (current_user = 'docs_maintenance');
DROP POLICY IF EXISTS maintenance ON audit_actors;
CREATE POLICY maintenance ON audit_actors TO docs_maintenance
  USING (current_user = 'docs_maintenance') WITH CHECK (current_user = 'docs_maintenance');
DROP POLICY IF EXISTS maintenance ON export_jobs;
CREATE POLICY maintenance ON export_jobs FOR SELECT TO docs_maintenance
  USING (current_user = 'docs_maintenance');

-- cross-org lists for the scheduled jobs (ids only)
CREATE OR REPLACE FUNCTION docs_audit_orgs() RETURNS SETOF text
LANGUAGE sql SECURITY DEFINER SET search_path = public, pg_temp AS $$
  SELECT h.org FROM audit_chain_heads h ORDER BY h.org
$$;

CREATE OR REPLACE FUNCTION docs_export_jobs_due(p_limit integer)
RETURNS TABLE (org text, id text)
LANGUAGE sql SECURITY DEFINER SET search_path = public, pg_temp AS $$
  SELECT j.org, j.id FROM export_jobs j WHERE j.state = 'pending'
  ORDER BY j.created_at LIMIT p_limit
$$;

-- SECURITY DEFINER functions: owned by docs_maintenance, executable by docs_app only
GRANT CREATE ON SCHEMA public TO docs_maintenance;
DO $$
DECLARE
  fn regprocedure;
BEGIN
  FOR fn IN SELECT p.oid::regprocedure FROM pg_proc p
            WHERE p.pronamespace = 'public'::regnamespace AND p.prosecdef
              AND p.proowner <> 'docs_maintenance'::regrole
  LOOP
    EXECUTE format('REVOKE ALL ON FUNCTION %s FROM PUBLIC', fn);
    EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO docs_app', fn);
    EXECUTE format('ALTER FUNCTION %s OWNER TO docs_maintenance', fn);
  END LOOP;
END $$;
REVOKE CREATE ON SCHEMA public FROM docs_maintenance;
