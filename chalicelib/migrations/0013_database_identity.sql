-- The database's own identity: a random id generated here, once, by the database.
--
-- Redis holds data derived from one database (cached documents and list pages,
-- idempotent responses, rate-limit buckets, real-time registrations).  Two stacks
-- on one Redis whose key prefixes happen to be equal (two checkouts on one
-- machine, a second stage pointed at the same cache) would otherwise serve each
-- other's entries.  Every Redis key therefore carries this id after the
-- configured prefix, hashed with the database's OID and the cluster's identifier
-- (adapters/postgres/identity.py, adapters/redis/namespace.py): no configuration
-- can make two databases share an entry, and a clone made with CREATE DATABASE …
-- TEMPLATE or a restored dump gets its own.  The runtime reads it once per
-- process, with its first connection (adapters/postgres/uow.py), and may only
-- read it.  A physical copy (a storage snapshot) keeps all three: give it a new id
-- before it serves beside its original (docs/operations.md).
--
-- One row, no org column: global, like outbox_pruned.  Expand-only: one new table.

CREATE TABLE IF NOT EXISTS database_identity (
  one        boolean     PRIMARY KEY DEFAULT true CHECK (one),  -- at most one row
  id         uuid        NOT NULL DEFAULT gen_random_uuid(),
  created_at timestamptz NOT NULL DEFAULT now()
);

-- the row goes in before row-level security is forced (no policy lets the owner write)
DO $$
BEGIN
  IF NOT (SELECT relforcerowsecurity FROM pg_class WHERE oid = 'database_identity'::regclass) THEN
    INSERT INTO database_identity DEFAULT VALUES ON CONFLICT (one) DO NOTHING;
  END IF;
END $$;

GRANT SELECT ON database_identity TO docs_app;
ALTER TABLE database_identity ENABLE ROW LEVEL SECURITY;
ALTER TABLE database_identity FORCE ROW LEVEL SECURITY;
DROP POLICY IF EXISTS identity ON database_identity;
CREATE POLICY identity ON database_identity FOR SELECT TO docs_app USING (true);
