-- Real-time fan-out (docs/realtime.md): its own cursor on the outbox, so that
-- neither it nor the search sync (processed_at) can delay the other.
--
-- realtime_cursors: one row per consumer name; (txid, seq) = the last outbox
-- row handed to subscribers.  Rows are read in (txid, seq) order and only from
-- transactions older than every running one (the changes feed's rule), so no
-- row can commit behind the cursor.  Not tenant data: no org column; only the
-- maintenance functions below touch it.  Expand-only: a new table, an index,
-- new functions.

CREATE TABLE IF NOT EXISTS realtime_cursors (
  name        text        PRIMARY KEY,
  txid        xid8        NOT NULL,
  seq         bigint      NOT NULL,
  updated_at  timestamptz NOT NULL DEFAULT now()
);
ALTER TABLE realtime_cursors ENABLE ROW LEVEL SECURITY;
ALTER TABLE realtime_cursors FORCE ROW LEVEL SECURITY;
REVOKE ALL ON realtime_cursors FROM PUBLIC, docs_app;
GRANT SELECT, INSERT, UPDATE ON realtime_cursors TO docs_maintenance;
DROP POLICY IF EXISTS maintenance ON realtime_cursors;
CREATE POLICY maintenance ON realtime_cursors TO docs_maintenance
  USING (current_user = 'docs_maintenance') WITH CHECK (current_user = 'docs_maintenance');

-- the stream across orgs, in cursor order
CREATE INDEX IF NOT EXISTS outbox_stream ON outbox (txid, seq);

-- Committed rows after the cursor, each marked safe when its transaction is
-- older than every running one (the cursor moves over safe rows only; newer
-- ones are sent early, and read again until they are safe: a long transaction
-- elsewhere, such as the search sync's claim, delays no frame).  The cursor row
-- stays locked until the caller's transaction ends (one fan-out batch at a
-- time).  A new consumer starts at the current horizon: no history replayed.
CREATE OR REPLACE FUNCTION docs_realtime_claim(p_name text, p_limit integer)
RETURNS TABLE (txid bigint, seq bigint, org text, doc_id text, version bigint, op text,
               created_at timestamptz, safe boolean, horizon bigint)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
#variable_conflict use_column
DECLARE
  v_horizon xid8 := pg_snapshot_xmin(pg_current_snapshot());
  v_txid xid8;
  v_seq bigint;
BEGIN
  INSERT INTO realtime_cursors (name, txid, seq) VALUES (p_name, v_horizon, 0)
  ON CONFLICT (name) DO NOTHING;
  SELECT c.txid, c.seq INTO v_txid, v_seq FROM realtime_cursors c
  WHERE c.name = p_name FOR UPDATE;
  RETURN QUERY SELECT o.txid::text::bigint, o.seq, o.org, o.doc_id, o.version, o.op, o.created_at,
                      o.txid < v_horizon, v_horizon::text::bigint
    FROM outbox o WHERE (o.txid, o.seq) > (v_txid, v_seq)
    ORDER BY o.txid, o.seq LIMIT p_limit;
END $$;

CREATE OR REPLACE FUNCTION docs_realtime_advance(p_name text, p_txid bigint, p_seq bigint)
RETURNS void
LANGUAGE sql SECURITY DEFINER SET search_path = public, pg_temp AS $$
  UPDATE realtime_cursors SET txid = p_txid::text::xid8, seq = p_seq, updated_at = now()
  WHERE name = p_name AND (txid, seq) < (p_txid::text::xid8, p_seq)
$$;

-- lag: since the oldest row after the cursor committed; backlog: rows after it
CREATE OR REPLACE FUNCTION docs_realtime_stats(p_name text)
RETURNS TABLE (lag_s double precision, backlog bigint)
LANGUAGE sql SECURITY DEFINER SET search_path = public, pg_temp AS $$
  SELECT coalesce(EXTRACT(EPOCH FROM now() - min(o.created_at))::float8, 0), count(o.seq)
  FROM realtime_cursors c JOIN outbox o ON (o.txid, o.seq) > (c.txid, c.seq)
  WHERE c.name = p_name
$$;

-- owned by docs_maintenance, executable by docs_app only (as in 0006)
GRANT CREATE ON SCHEMA public TO docs_maintenance;
DO $$
DECLARE
  fn regprocedure;
BEGIN
  FOR fn IN SELECT p.oid::regprocedure FROM pg_proc p
            WHERE p.pronamespace = 'public'::regnamespace AND p.prosecdef
              AND p.proname LIKE 'docs\_realtime\_%'
  LOOP
    EXECUTE format('REVOKE ALL ON FUNCTION %s FROM PUBLIC', fn);
    EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO docs_app', fn);
    EXECUTE format('ALTER FUNCTION %s OWNER TO docs_maintenance', fn);
  END LOOP;
END $$;
REVOKE CREATE ON SCHEMA public FROM docs_maintenance;
