-- The audit chain also pseudonymises the user a row is *about*, not only its actor.
--
-- Grant rows (grant.put, grant.delete) name the grantee in ``details.grantee``.  A
-- chained row cannot be rewritten, so a user id stored there in clear would outlive
-- that user's erasure.  The chain trigger now stores the grantee's pseudonym, as it
-- does for the actor (audit_actors maps it back while the user is not erased;
-- GET /audit shows the user id through that mapping).  Grants land in the same
-- release as the chain (0007, 0009), so no earlier row names a grantee.
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
  IF jsonb_typeof(NEW.details -> 'grantee') = 'string' THEN
    NEW.details := jsonb_set(
      NEW.details, '{grantee}', to_jsonb(audit_pseudonym_for(NEW.org, NEW.details ->> 'grantee'))
    );
  END IF;
  NEW.at := now();  -- the database's clock: a writer cannot back-date a row
  NEW.chain_seq := head.last_seq + 1;
  NEW.hash := sha256(head.last_hash || audit_canonical(NEW));
  UPDATE audit_chain_heads SET last_seq = NEW.chain_seq, last_hash = NEW.hash, updated_at = now()
    WHERE org = NEW.org;
  RETURN NEW;
END $$;
