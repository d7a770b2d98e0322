-- The audit hash chain leaves the write path (docs/adr/0011-audit-chain-off-the-write-path.md).
--
-- Until now the BEFORE INSERT trigger of audit_log took the org's chain-head row
-- lock and hashed the row inside the writer's transaction, so every write of
-- one org waited for the previous one to commit.  From this file on:
--
-- 1. The insert trigger (same name, audit_log_chain) still runs on every insert
--    path: it swaps the actor and a grantee for the org's pseudonyms and stamps
--    the database's clock, and it leaves chain_seq and hash NULL (whatever the
--    writer sent): the row is "pending".  The pseudonym lookup takes no org-wide
--    lock (a user's first row waits only for a concurrent first row of the same
--    user, on audit_actors' primary key).
-- 2. docs_audit_chain_pending(org, limit, wait) (the number chained, -1 when the
--    chain cannot be extended), SECURITY DEFINER as docs_audit_chainer (a role
--    of its own, created by the migrator: docs_maintenance still reads no
--    content column), links the org's pending rows of
--    committed transactions, in id order, after the chain head:
--        chain_seq = head + 1, hash = sha256(previous hash || canonical row)
--    under the chain-head row lock (taken with SKIP LOCKED unless ``wait``: two
--    chainers never interleave, the second does nothing or waits).  A row whose
--    transaction commits after a later id was chained gets the next position:
--    the chain order is the chaining order; verifiers follow chain_seq.
--    docs_audit_chain_all(limit) does it for every org with pending rows, and
--    docs_audit_chain_stats() reports the oldest pending row's age (the
--    AuditChainLag metric, alarmed).
-- 3. audit_log stays append-only: the UPDATE/DELETE trigger (same name,
--    audit_log_no_rewrite) refuses everything but one change, made by
--    docs_audit_chainer (that is, inside the chainer): setting chain_seq and
--    hash of a pending row, once, every other column unchanged.
--    docs_audit_chainer may read audit rows and chain heads, update those two
--    columns and the heads, and nothing else; docs_app still has no UPDATE or
--    DELETE at all.
--
-- Rows chained before this file keep their positions and hashes.  Expand-only:
-- functions replaced, triggers re-created under their names, an index, grants,
-- a policy.

-- 1. the insert trigger: pseudonyms and the clock, no chain
CREATE OR REPLACE FUNCTION docs_audit_chain() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
BEGIN
  IF NEW.actor IS NOT NULL THEN
    NEW.actor := audit_pseudonym_for(NEW.org, NEW.actor);
  END IF;
  IF jsonb_typeof(NEW.details -> 'grantee') = 'string' THEN
    NEW.details := jsonb_set(
      NEW.details, '{grantee}', to_jsonb(audit_pseudonym_for(NEW.org, NEW.details ->> 'grantee'))
    );
  END IF;
  NEW.at := now();  -- the database's clock: a writer cannot back-date a row
  NEW.chain_seq := NULL;  -- only the chainer places a row in the chain
  NEW.hash := NULL;
  RETURN NEW;
END $$;

-- 3. append-only, but for the chainer's one change
CREATE OR REPLACE FUNCTION audit_log_guard() RETURNS trigger
LANGUAGE plpgsql SET search_path = public, pg_temp AS $$
BEGIN
  IF TG_OP = 'UPDATE' AND current_user = 'docs_audit_chainer'
     AND OLD.chain_seq IS NULL AND OLD.hash IS NULL
     AND NEW.chain_seq IS NOT NULL AND NEW.hash IS NOT NULL
     AND (to_jsonb(NEW) - 'chain_seq' - 'hash') = (to_jsonb(OLD) - 'chain_seq' - 'hash') THEN
    RETURN NEW;
  END IF;
  RAISE EXCEPTION 'audit_log is append-only';
END $$;
REVOKE ALL ON FUNCTION audit_log_guard() FROM PUBLIC;
DROP TRIGGER IF EXISTS audit_log_no_rewrite ON audit_log;
CREATE TRIGGER audit_log_no_rewrite BEFORE UPDATE OR DELETE ON audit_log
  FOR EACH ROW EXECUTE FUNCTION audit_log_guard();

-- the pending rows of an org, oldest first (small: the chainer keeps it so)
CREATE INDEX IF NOT EXISTS audit_log_unchained ON audit_log (org, id) WHERE chain_seq IS NULL;

-- the chainer's role: audit rows (it hashes them whole: ids, versions, roles and
-- pseudonyms, never document content), their chain columns, the heads
GRANT SELECT, UPDATE (chain_seq, hash) ON audit_log TO docs_audit_chainer;
GRANT SELECT, INSERT, UPDATE ON audit_chain_heads TO docs_audit_chainer;
GRANT EXECUTE ON FUNCTION audit_field(text), audit_canonical(audit_log) TO docs_audit_chainer;
DROP POLICY IF EXISTS chainer ON audit_log;
CREATE POLICY chainer ON audit_log TO docs_audit_chainer
  USING (current_user = 'docs_audit_chainer') WITH CHECK (current_user = 'docs_audit_chainer');
DROP POLICY IF EXISTS chainer ON audit_chain_heads;
CREATE POLICY chainer ON audit_chain_heads TO docs_audit_chainer
  USING (current_user = 'docs_audit_chainer') WITH CHECK (current_user = 'docs_audit_chainer');

-- 2. the chainer
CREATE OR REPLACE FUNCTION docs_audit_chain_pending(p_org text, p_limit integer,
                                                   p_wait boolean DEFAULT false)
RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
  head audit_chain_heads%ROWTYPE;
  r audit_log;
  seq bigint;
  prev bytea;
  n integer := 0;
BEGIN
  -- nothing pending, nothing to lock (a chainer at work still shows its rows
  -- pending: then the lock below waits for it, or skips)
  IF p_org IS NULL OR NOT EXISTS (SELECT FROM audit_log a
                                  WHERE a.org = p_org AND a.chain_seq IS NULL) THEN
    RETURN 0;
  END IF;
  INSERT INTO audit_chain_heads (org, last_seq, last_hash) VALUES (p_org, 0, ''::bytea)
    ON CONFLICT (org) DO NOTHING;
  -- the org's chain lock: one chainer at a time (the others skip, or wait)
  IF p_wait THEN
    SELECT * INTO head FROM audit_chain_heads h WHERE h.org = p_org FOR UPDATE;
  ELSE
    SELECT * INTO head FROM audit_chain_heads h WHERE h.org = p_org FOR UPDATE SKIP LOCKED;
  END IF;
  IF NOT FOUND THEN
    RETURN 0;  -- another chainer holds it
  END IF;
  seq := head.last_seq;
  prev := head.last_hash;
  -- a new snapshot (read committed): rows committed until now, the previous
  -- chainer's work included
  BEGIN
    FOR r IN SELECT * FROM audit_log a WHERE a.org = p_org AND a.chain_seq IS NULL
             ORDER BY a.id LIMIT p_limit LOOP
      seq := seq + 1;
      r.chain_seq := seq;
      prev := sha256(prev || audit_canonical(r));
      UPDATE audit_log SET chain_seq = seq, hash = prev WHERE id = r.id;
      n := n + 1;
    END LOOP;
    IF n > 0 THEN
      UPDATE audit_chain_heads SET last_seq = seq, last_hash = prev, updated_at = now()
        WHERE org = p_org;
    END IF;
  EXCEPTION WHEN unique_violation OR raise_exception THEN
    -- the chain cannot be extended: its next position is taken (a row forged past
    -- the trigger) or the guard refused a row.  Nothing of this call stays; the
    -- caller says so (and a verify reports where the chain breaks)
    RETURN -1;
  END;
  RETURN n;
END $$;

-- every org with pending rows, each under its own head lock (busy ones skipped);
-- an org whose chain cannot be extended reports n = -1 and stops only itself
CREATE OR REPLACE FUNCTION docs_audit_chain_all(p_limit integer)
RETURNS TABLE (org text, n integer)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
#variable_conflict use_column
DECLARE
  o text;
BEGIN
  FOR o IN SELECT DISTINCT a.org FROM audit_log a WHERE a.chain_seq IS NULL ORDER BY 1 LOOP
    org := o;
    n := docs_audit_chain_pending(o, p_limit, false);
    RETURN NEXT;
  END LOOP;
END $$;

-- the oldest pending row's age (seconds; 0 when none) and how many rows are pending
CREATE OR REPLACE FUNCTION docs_audit_chain_stats()
RETURNS TABLE (lag_s double precision, pending bigint)
LANGUAGE sql SECURITY DEFINER SET search_path = public, pg_temp AS $$
  SELECT coalesce(EXTRACT(EPOCH FROM now() - min(a.at))::float8, 0), count(*)
  FROM audit_log a WHERE a.chain_seq IS NULL
$$;

-- as in 0006: definer functions executable by docs_app only, owned by their role
GRANT CREATE ON SCHEMA public TO docs_audit_chainer;
DO $$
DECLARE
  fn regprocedure;
BEGIN
  FOR fn IN SELECT p.oid::regprocedure FROM pg_proc p
            WHERE p.pronamespace = 'public'::regnamespace AND p.prosecdef
              AND p.proname IN ('docs_audit_chain_pending', 'docs_audit_chain_all',
                                'docs_audit_chain_stats')
  LOOP
    EXECUTE format('REVOKE ALL ON FUNCTION %s FROM PUBLIC', fn);
    EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO docs_app', fn);
    EXECUTE format('ALTER FUNCTION %s OWNER TO docs_audit_chainer', fn);
  END LOOP;
END $$;
REVOKE CREATE ON SCHEMA public FROM docs_audit_chainer;
