-- Signed webhooks (docs/webhooks.md): endpoints an org's admins register, the
-- deliveries made for them from the outbox, and every attempt.
--
-- * webhook_endpoints: the URL, the event types and tags it wants, and its
--   signing secret sealed (AES-256-GCM under a key that is not in the
--   database, bound to the org and endpoint id); during a rotation the
--   previous sealed secret until previous_until.  The API shows a secret once,
--   when it is made; nothing reads it back out.
-- * webhook_deliveries: one per (endpoint, outbox row), unique on both, so a
--   re-read outbox row is not delivered twice.  Ordered per document by the
--   outbox seq: only the oldest pending delivery of a document to an endpoint
--   is ever due (docs_webhook_due).
-- * webhook_attempts: one row per HTTP attempt (status or error, duration).
--
-- The deliverer's cursor on the outbox is a row of realtime_cursors named
-- 'webhooks' (migration 0008's docs_realtime_claim/advance/stats serve any
-- consumer name): a third consumer, independent of the search sync and the
-- real-time fan-out.
--
-- Tenant tables: forced row-level security by org, the runtime role granted
-- what the API and the deliverer do.  Expand-only: new tables, indexes, one
-- function.

CREATE TABLE IF NOT EXISTS webhook_endpoints (
  org                    text        NOT NULL,
  id                     text        NOT NULL,
  url                    text        NOT NULL,
  events                 text[]      NOT NULL,
  tags                   text[]      NOT NULL DEFAULT '{}',
  secret_sealed          text        NOT NULL,
  previous_secret_sealed text,
  previous_until         timestamptz,
  status                 text        NOT NULL DEFAULT 'active'
                                     CHECK (status IN ('active', 'disabled')),
  consecutive_failures   integer     NOT NULL DEFAULT 0,
  failing_since          timestamptz,
  disabled_at            timestamptz,
  disabled_reason        text,
  created_at             timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (org, id)
);

CREATE TABLE IF NOT EXISTS webhook_deliveries (
  org             text        NOT NULL,
  id              text        NOT NULL,
  endpoint_id     text        NOT NULL,
  outbox_seq      bigint      NOT NULL,
  event_type      text        NOT NULL,
  doc_id          text        NOT NULL,
  version         bigint      NOT NULL,
  payload         jsonb       NOT NULL,
  status          text        NOT NULL DEFAULT 'pending'
                              CHECK (status IN ('pending', 'delivered', 'dead')),
  attempts        integer     NOT NULL DEFAULT 0,
  window_start    timestamptz NOT NULL DEFAULT now(),
  next_attempt_at timestamptz NOT NULL DEFAULT now(),
  created_at      timestamptz NOT NULL DEFAULT now(),
  finished_at     timestamptz,
  last_error      text,
  PRIMARY KEY (org, id),
  UNIQUE (org, endpoint_id, outbox_seq),
  FOREIGN KEY (org, endpoint_id) REFERENCES webhook_endpoints (org, id) ON DELETE CASCADE
);
CREATE INDEX IF NOT EXISTS webhook_deliveries_due
  ON webhook_deliveries (next_attempt_at) WHERE status = 'pending';
CREATE INDEX IF NOT EXISTS webhook_deliveries_order
  ON webhook_deliveries (org, endpoint_id, doc_id, outbox_seq) WHERE status = 'pending';
CREATE INDEX IF NOT EXISTS webhook_deliveries_newest
  ON webhook_deliveries (org, endpoint_id, created_at DESC, id DESC);

CREATE TABLE IF NOT EXISTS webhook_attempts (
  org          text        NOT NULL,
  delivery_id  text        NOT NULL,
  n            integer     NOT NULL,
  at           timestamptz NOT NULL DEFAULT now(),
  status_code  integer,
  error        text,
  duration_ms  integer     NOT NULL DEFAULT 0,
  PRIMARY KEY (org, delivery_id, n),
  FOREIGN KEY (org, delivery_id) REFERENCES webhook_deliveries (org, id) ON DELETE CASCADE
);

GRANT SELECT, INSERT, UPDATE, DELETE ON webhook_endpoints TO docs_app;
GRANT SELECT, INSERT, UPDATE, DELETE ON webhook_deliveries TO docs_app;
GRANT SELECT, INSERT, DELETE ON webhook_attempts TO docs_app;

DO $$
DECLARE
  t text;
BEGIN
  FOREACH t IN ARRAY ARRAY['webhook_endpoints', 'webhook_deliveries', 'webhook_attempts'] LOOP
    EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
    EXECUTE format('ALTER TABLE %I FORCE ROW LEVEL SECURITY', t);
    EXECUTE format('DROP POLICY IF EXISTS tenant ON %I', t);
    EXECUTE format('CREATE POLICY tenant ON %I TO docs_app '
                   'USING (org = current_setting(''app.org'', true)) '
                   'WITH CHECK (org = current_setting(''app.org'', true))', t);
  END LOOP;
END $$;

-- Deliveries due now across orgs (ids only; each is then leased under its org):
-- pending, its endpoint active, and the oldest pending one of its document on
-- its endpoint (a later change of a document waits for the earlier one to be
-- delivered or dead-lettered).
CREATE OR REPLACE FUNCTION docs_webhook_due(p_now timestamptz, p_limit integer)
RETURNS TABLE (org text, id text)
LANGUAGE sql SECURITY DEFINER SET search_path = public, pg_temp AS $$
  SELECT d.org, d.id FROM webhook_deliveries d
  JOIN webhook_endpoints e ON e.org = d.org AND e.id = d.endpoint_id AND e.status = 'active'
  WHERE d.status = 'pending' AND d.next_attempt_at <= p_now
    AND NOT EXISTS (SELECT FROM webhook_deliveries p
                    WHERE p.org = d.org AND p.endpoint_id = d.endpoint_id
                      AND p.doc_id = d.doc_id AND p.status = 'pending'
                      AND p.outbox_seq < d.outbox_seq)
  ORDER BY d.next_attempt_at, d.outbox_seq LIMIT p_limit
$$;

-- pending deliveries (across orgs) and the age of the oldest: the lag metric
CREATE OR REPLACE FUNCTION docs_webhook_stats()
RETURNS TABLE (pending bigint, oldest_s double precision)
LANGUAGE sql SECURITY DEFINER SET search_path = public, pg_temp AS $$
  SELECT count(*), coalesce(EXTRACT(EPOCH FROM now() - min(d.created_at))::float8, 0)
  FROM webhook_deliveries d
  JOIN webhook_endpoints e ON e.org = d.org AND e.id = d.endpoint_id AND e.status = 'active'
  WHERE d.status = 'pending'
$$;

-- as in 0006: definer functions executable by docs_app only, owned by docs_maintenance
GRANT SELECT (org, id, status) ON webhook_endpoints TO docs_maintenance;
GRANT SELECT (org, id, endpoint_id, outbox_seq, doc_id, status, next_attempt_at, created_at)
  ON webhook_deliveries TO docs_maintenance;
DROP POLICY IF EXISTS maintenance ON webhook_endpoints;
CREATE POLICY maintenance ON webhook_endpoints FOR SELECT TO docs_maintenance
  USING (current_user = 'docs_maintenance');
DROP POLICY IF EXISTS maintenance ON webhook_deliveries;
CREATE POLICY maintenance ON webhook_deliveries FOR SELECT TO docs_maintenance
  USING (current_user = 'docs_maintenance');
GRANT CREATE ON SCHEMA public TO docs_maintenance;
DO $$
DECLARE
  fn regprocedure;
BEGIN
  FOR fn IN SELECT p.oid::regprocedure FROM pg_proc p
            WHERE p.pronamespace = 'public'::regnamespace AND p.prosecdef
              AND p.proname LIKE 'docs\_webhook\_%'
  LOOP
    EXECUTE format('REVOKE ALL ON FUNCTION %s FROM PUBLIC', fn);
    EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO docs_app', fn);
    EXECUTE format('ALTER FUNCTION %s OWNER TO docs_maintenance', fn);
  END LOOP;
END $$;
REVOKE CREATE ON SCHEMA public FROM docs_maintenance;
