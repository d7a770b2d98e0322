"""Webhooks in PostgreSQL (migration 0017): the API's store and the deliverer's queue.

The API's calls are tenant transactions (row-level security by org).  The
deliverer reads the outbox from its own cursor (``realtime_cursors`` row
``webhooks``, through migration 0008's ``docs_realtime_claim``/``advance``):
one maintenance transaction claims the rows, reads each org's endpoints and
versions with ``app.org`` set to that org, stores the deliveries and moves the
cursor, so a row is turned into deliveries exactly once.  Only rows older
than every running transaction (``safe``) are taken: none can commit behind
the cursor.  Sending happens outside any transaction: a delivery is leased
(its ``next_attempt_at`` pushed past the send), sent, then recorded.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import TYPE_CHECKING, Any

from psycopg.types.json import Jsonb

from chalicelib.adapters.postgres.audit import INSERT_AUDIT, audit_params
from chalicelib.adapters.postgres.document_states import tenant
from chalicelib.adapters.postgres.realtime import advance_cursor, claim_rows, cursor_stats
from chalicelib.domain.audit import AuditEntry
from chalicelib.domain.errors import Conflict
from chalicelib.domain.ports.webhooks import FanIn, Result, StreamItem
from chalicelib.domain.realtime import StreamRow
from chalicelib.domain.webhooks import Attempt, Delivery, Endpoint, Job, Outcome

if TYPE_CHECKING:
    import psycopg

    from chalicelib.adapters.postgres.protocols import Database

CURSOR = "webhooks"
_ENDPOINT_COLUMNS = (
    "id, url, events, tags, status, created_at, disabled_at, disabled_reason, "
    "CASE WHEN previous_until > now() THEN previous_until END AS previous_until"
)
_DELIVERY_COLUMNS = (
    "id, endpoint_id, event_type, doc_id, version, status, attempts, created_at, "
    "next_attempt_at, finished_at, last_error"
)
_VERSIONS = (
    "SELECT v.id, v.version, v.action, v.tags FROM document_versions v "
    "JOIN unnest(%s::text[], %s::bigint[]) AS k(id, version) "
    "ON v.org = %s AND v.id = k.id AND v.version = k.version"
)
_INSERT_DELIVERY = (
    "INSERT INTO webhook_deliveries (org, id, endpoint_id, outbox_seq, event_type, doc_id, "
    "version, payload) VALUES (%s, %s, %s, %s, %s, %s, %s, %s) "
    "ON CONFLICT (org, endpoint_id, outbox_seq) DO NOTHING"
)


def _endpoint(row: dict[str, Any]) -> Endpoint:
    return Endpoint(
        row["id"], row["url"], tuple(row["events"]), tuple(row["tags"]), row["status"],
        row["created_at"], row["disabled_at"], row["disabled_reason"], row["previous_until"],
    )  # fmt: skip


def _delivery(row: dict[str, Any], history: tuple[Attempt, ...] = ()) -> Delivery:
    return Delivery(**{k: row[k] for k in _DELIVERY_COLUMNS.split(", ")}, history=history)


def _audit(conn: psycopg.Connection[Any], org: str, audit: AuditEntry) -> None:
    conn.execute(INSERT_AUDIT, audit_params(org, audit))


class PostgresWebhooks:
    """Implements ``WebhookStore`` and ``WebhookQueue``."""

    def __init__(self, uow: Database) -> None:
        self.uow = uow

    # -- the API's side ---------------------------------------------------------
    def create(
        self, org: str, endpoint: Endpoint, sealed: str, audit: AuditEntry, *, cap: int
    ) -> Endpoint | None:
        with self.uow.transaction(org) as tx:
            conn = tx.conn
            # one registration at a time per org, so the cap holds under concurrency
            conn.execute("SELECT pg_advisory_xact_lock(hashtext('webhooks:' || %s))", (org,))
            n = conn.execute(
                "SELECT count(*) AS n FROM webhook_endpoints WHERE org = %s", (org,)
            ).fetchone()
            if n is not None and n["n"] >= cap:
                return None
            row = conn.execute(
                "INSERT INTO webhook_endpoints (org, id, url, events, tags, secret_sealed) "
                f"VALUES (%s, %s, %s, %s, %s, %s) RETURNING {_ENDPOINT_COLUMNS}",
                (org, endpoint.id, endpoint.url, list(endpoint.events), list(endpoint.tags),
                 sealed),
            ).fetchone()  # fmt: skip
            _audit(conn, org, audit)
        assert row is not None
        return _endpoint(row)

    def endpoints(self, org: str) -> list[Endpoint]:
        with self.uow.transaction(org) as tx:
            rows = tx.conn.execute(
                f"SELECT {_ENDPOINT_COLUMNS} FROM webhook_endpoints WHERE org = %s "
                "ORDER BY created_at, id",
                (org,),
            ).fetchall()
        return [_endpoint(r) for r in rows]

    def delete(self, org: str, endpoint_id: str, audit: AuditEntry) -> bool:
        with self.uow.transaction(org) as tx:
            gone = tx.conn.execute(
                "DELETE FROM webhook_endpoints WHERE org = %s AND id = %s RETURNING id",
                (org, endpoint_id),
            ).fetchone()
            if gone is not None:
                _audit(tx.conn, org, audit)
        return gone is not None

    def rotate(
        self, org: str, endpoint_id: str, sealed: str, until: datetime, audit: AuditEntry
    ) -> Endpoint | None:
        with self.uow.transaction(org) as tx:
            row = tx.conn.execute(
                "UPDATE webhook_endpoints SET previous_secret_sealed = secret_sealed, "
                "secret_sealed = %s, previous_until = %s WHERE org = %s AND id = %s "
                f"RETURNING {_ENDPOINT_COLUMNS}",
                (sealed, until, org, endpoint_id),
            ).fetchone()
            if row is not None:
                _audit(tx.conn, org, audit)
        return None if row is None else _endpoint(row)

    def deliveries(self, org: str, endpoint_id: str, *, limit: int) -> list[Delivery] | None:
        with self.uow.transaction(org) as tx:
            conn = tx.conn
            found = conn.execute(
                "SELECT 1 FROM webhook_endpoints WHERE org = %s AND id = %s", (org, endpoint_id)
            ).fetchone()
            if found is None:
                return None
            rows = conn.execute(
                f"SELECT {_DELIVERY_COLUMNS} FROM webhook_deliveries "
                "WHERE org = %s AND endpoint_id = %s ORDER BY created_at DESC, id DESC LIMIT %s",
                (org, endpoint_id, limit),
            ).fetchall()
            attempts: dict[str, list[Attempt]] = {}
            for a in conn.execute(
                "SELECT delivery_id, n, at, status_code, error, duration_ms FROM webhook_attempts "
                "WHERE org = %s AND delivery_id = ANY(%s) ORDER BY delivery_id, n",
                (org, [r["id"] for r in rows]),
            ).fetchall():
                attempts.setdefault(a["delivery_id"], []).append(
                    Attempt(a["n"], a["at"], a["status_code"], a["error"], a["duration_ms"])
                )
        return [_delivery(r, tuple(attempts.get(r["id"], ()))) for r in rows]

    def replay(
        self, org: str, endpoint_id: str, delivery_id: str, now: datetime, audit: AuditEntry
    ) -> Delivery | None:
        with self.uow.transaction(org) as tx:
            conn = tx.conn
            row = conn.execute(
                "SELECT status FROM webhook_deliveries WHERE org = %s AND endpoint_id = %s "
                "AND id = %s FOR UPDATE",
                (org, endpoint_id, delivery_id),
            ).fetchone()
            if row is None:
                return None
            if row["status"] == "pending":
                raise Conflict("This delivery is still pending: it is being retried.")
            updated = conn.execute(
                "UPDATE webhook_deliveries SET status = 'pending', window_start = %s, "
                "next_attempt_at = %s, finished_at = NULL WHERE org = %s AND id = %s "
                f"RETURNING {_DELIVERY_COLUMNS}",
                (now, now, org, delivery_id),
            ).fetchone()
            conn.execute(
                "UPDATE webhook_endpoints SET status = 'active', consecutive_failures = 0, "
                "failing_since = NULL, disabled_at = NULL, disabled_reason = NULL "
                "WHERE org = %s AND id = %s",
                (org, endpoint_id),
            )
            _audit(conn, org, audit)
        assert updated is not None
        return _delivery(updated)

    # -- the deliverer's side ---------------------------------------------------
    @contextmanager
    def fan_in(self, limit: int) -> Iterator[FanIn]:
        with self.uow.maintenance() as conn:
            safe = []
            for row in claim_rows(
                conn, CURSOR, limit
            ):  # the safe prefix: nothing commits behind it
                if not row.safe:
                    break
                safe.append(row)
            by_org: dict[str, list[StreamRow]] = {}
            for row in safe:
                by_org.setdefault(row.org, []).append(row)
            batch = FanIn([], {})
            versions: dict[tuple[str, str, int], dict[str, Any]] = {}
            for org, rows in sorted(by_org.items()):
                tenant(conn, org)
                found = conn.execute(
                    f"SELECT {_ENDPOINT_COLUMNS} FROM webhook_endpoints "
                    "WHERE org = %s AND status = 'active' ORDER BY id",
                    (org,),
                ).fetchall()
                if not found:
                    continue
                batch.endpoints[org] = [_endpoint(r) for r in found]
                ids, numbers = [r.doc_id for r in rows], [r.version for r in rows]
                for found_v in conn.execute(_VERSIONS, (ids, numbers, org)).fetchall():
                    versions[(org, found_v["id"], found_v["version"])] = found_v
            for row in safe:
                v = versions.get((row.org, row.doc_id, row.version))
                batch.items.append(
                    StreamItem(
                        row.txid, row.seq, row.org, row.doc_id, row.version, row.op,
                        row.created_at, v["action"] if v else None,
                        tuple(v["tags"]) if v else None,
                    )
                )  # fmt: skip
            yield batch
            for org in sorted({d.org for d in batch.deliveries}):
                tenant(conn, org)
                conn.cursor().executemany(
                    _INSERT_DELIVERY,
                    [
                        (d.org, d.id, d.endpoint_id, d.seq, d.event_type, d.doc_id, d.version,
                         Jsonb(d.payload))
                        for d in batch.deliveries if d.org == org
                    ],
                )  # fmt: skip
            if batch.advance_to is not None:
                tenant(conn, "")
                advance_cursor(conn, CURSOR, batch.advance_to)

    def due(self, now: datetime, limit: int) -> list[tuple[str, str]]:
        with self.uow.maintenance() as conn:
            rows = conn.execute("SELECT org, id FROM docs_webhook_due(%s, %s)", (now, limit))
            return [(r["org"], r["id"]) for r in rows.fetchall()]

    def lease(self, org: str, delivery_id: str, now: datetime, until: datetime) -> Job | None:
        with self.uow.transaction(org) as tx:
            row = tx.conn.execute(
                "UPDATE webhook_deliveries d SET next_attempt_at = %s FROM webhook_endpoints e "
                "WHERE d.org = %s AND d.id = %s AND d.status = 'pending' "
                "AND d.next_attempt_at <= %s AND e.org = d.org AND e.id = d.endpoint_id "
                "AND e.status = 'active' RETURNING d.endpoint_id, e.url, e.secret_sealed, "
                "CASE WHEN e.previous_until > %s THEN e.previous_secret_sealed END AS previous, "
                "d.payload, d.attempts, d.window_start, e.consecutive_failures, e.failing_since",
                (until, org, delivery_id, now, now),
            ).fetchone()
        if row is None:
            return None
        from chalicelib.domain.webhooks import encode_body

        secrets = (row["secret_sealed"],) + ((row["previous"],) if row["previous"] else ())
        return Job(
            org, delivery_id, row["endpoint_id"], row["url"], secrets, encode_body(row["payload"]),
            row["attempts"], row["window_start"], row["consecutive_failures"],
            row["failing_since"],
        )  # fmt: skip

    def record(self, job: Job, outcome: Outcome, result: Result, now: datetime) -> None:
        with self.uow.transaction(job.org) as tx:
            conn = tx.conn
            n = conn.execute(
                "UPDATE webhook_deliveries SET attempts = attempts + 1, status = %s, "
                "next_attempt_at = %s, last_error = %s, finished_at = CASE WHEN %s <> 'pending' "
                "THEN %s END WHERE org = %s AND id = %s RETURNING attempts",
                (result.status, result.next_attempt_at, outcome.error, result.status, now,
                 job.org, job.delivery_id),
            ).fetchone()  # fmt: skip
            if n is None:  # the endpoint (and its deliveries) was deleted meanwhile
                return
            conn.execute(
                "INSERT INTO webhook_attempts (org, delivery_id, n, at, status_code, error, "
                "duration_ms) VALUES (%s, %s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
                (job.org, job.delivery_id, n["attempts"], now, outcome.status_code,
                 outcome.error, outcome.duration_ms),
            )  # fmt: skip
            if outcome.ok:
                conn.execute(
                    "UPDATE webhook_endpoints SET consecutive_failures = 0, failing_since = NULL "
                    "WHERE org = %s AND id = %s AND consecutive_failures > 0",
                    (job.org, job.endpoint_id),
                )
            else:
                conn.execute(
                    "UPDATE webhook_endpoints SET consecutive_failures = consecutive_failures + 1, "
                    "failing_since = coalesce(failing_since, %s) WHERE org = %s AND id = %s",
                    (now, job.org, job.endpoint_id),
                )
            if result.disable_reason is not None:
                changed = conn.execute(
                    "UPDATE webhook_endpoints SET status = 'disabled', disabled_at = %s, "
                    "disabled_reason = %s WHERE org = %s AND id = %s AND status = 'active' "
                    "RETURNING id",
                    (now, result.disable_reason, job.org, job.endpoint_id),
                ).fetchone()
                if changed is not None and result.audit is not None:
                    _audit(conn, job.org, result.audit)

    def stats(self) -> tuple[float, int, int, float]:
        with self.uow.maintenance() as conn:
            lag = cursor_stats(conn, CURSOR)
            pending = conn.execute("SELECT pending, oldest_s FROM docs_webhook_stats()").fetchone()
        assert pending is not None
        return (
            lag.lag_s,
            lag.backlog,
            int(pending["pending"] or 0),
            max(0.0, float(pending["oldest_s"] or 0.0)),
        )
