"""Signed webhooks as use cases (docs/webhooks.md).

``WebhookService``: the API (admins only, the caller's org only): register an
endpoint (its secret shown once), list, delete, rotate the secret with an
overlap, list deliveries with their attempts, replay one.

``Deliverer``: the third outbox consumer.  ``run_once`` fans in (outbox rows
after its cursor become deliveries, one per matching endpoint, in one
transaction with the cursor's move) and then sends what is due: only the
oldest pending delivery of a document to an endpoint is ever due, so changes
of a document arrive in order (a later one waits until the earlier one is
delivered or dead-lettered).  A failed attempt is retried with exponential
backoff and jitter until its window (24 h) ends, then dead-lettered; an
endpoint failing for long enough is disabled, audited and logged.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from chalicelib.config_webhooks import WebhookSettings
from chalicelib.domain.audit import AuditEntry
from chalicelib.domain.errors import Conflict, NotFound
from chalicelib.domain.model import new_id
from chalicelib.domain.ports.webhooks import (
    NewDelivery,
    Result,
    SecretBox,
    Sender,
    WebhookQueue,
    WebhookStore,
)
from chalicelib.domain.principal import Principal
from chalicelib.domain.timestamps import iso_z
from chalicelib.domain.webhook_urls import validate_url
from chalicelib.domain.webhooks import (
    Endpoint,
    Job,
    Outcome,
    backoff_s,
    event_type,
    new_secret,
    parse_overlap,
    parse_registration,
    payload,
    sign,
)
from chalicelib.observability import count, gauge, logger
from chalicelib.service_layer.retry import retry_transient

SYSTEM_ACTOR = "docs-webhooks"


def _context(org: str, endpoint_id: str) -> str:
    return f"{org}/{endpoint_id}"


def _missing(endpoint_id: str) -> NotFound:
    return NotFound(f"No webhook endpoint {endpoint_id!r} in this organisation.")


class WebhookService:
    """``/webhooks``: admins only."""

    def __init__(
        self,
        store: WebhookStore,
        box: SecretBox,
        settings: WebhookSettings | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.store = store
        self.box = box
        self.settings = settings or WebhookSettings()
        self._clock = clock or (lambda: datetime.now(UTC))

    def _audit(self, who: Principal, action: str, details: dict[str, Any]) -> AuditEntry:
        return AuditEntry(action, who.sub, request_id=who.request_id, details=details)

    @retry_transient()
    def register(self, who: Principal, data: Any) -> dict[str, Any]:
        who.require("admin")
        url, events, tags = parse_registration(data)
        url = validate_url(url, insecure_local=self.settings.insecure_local)
        endpoint = Endpoint(new_id(), url, events, tags)
        secret = new_secret()
        sealed = self.box.seal(secret, _context(who.org, endpoint.id))
        audit = self._audit(who, "webhook.create", {"endpoint": endpoint.id, "events": events})
        stored = self.store.create(
            who.org, endpoint, sealed, audit, cap=self.settings.max_endpoints
        )
        if stored is None:
            raise Conflict(
                f"This organisation has {self.settings.max_endpoints} webhook endpoints "
                "already; delete one first."
            )
        return {**stored.to_json(), "secret": secret}

    @retry_transient()
    def list(self, who: Principal) -> dict[str, Any]:
        who.require("admin")
        return {"items": [e.to_json() for e in self.store.endpoints(who.org)]}

    @retry_transient()
    def delete(self, who: Principal, endpoint_id: str) -> None:
        who.require("admin")
        audit = self._audit(who, "webhook.delete", {"endpoint": endpoint_id})
        if not self.store.delete(who.org, endpoint_id, audit):
            raise _missing(endpoint_id)

    @retry_transient()
    def rotate(self, who: Principal, endpoint_id: str, data: Any) -> dict[str, Any]:
        who.require("admin")
        overlap = parse_overlap(data, default_s=self.settings.rotation_overlap_s, max_s=7 * 86_400)
        secret = new_secret()
        sealed = self.box.seal(secret, _context(who.org, endpoint_id))
        until = self._clock() + timedelta(seconds=overlap)
        audit = self._audit(who, "webhook.rotate", {"endpoint": endpoint_id, "overlap_s": overlap})
        endpoint = self.store.rotate(who.org, endpoint_id, sealed, until, audit)
        if endpoint is None:
            raise _missing(endpoint_id)
        return {**endpoint.to_json(), "secret": secret}

    @retry_transient()
    def deliveries(self, who: Principal, endpoint_id: str, limit: int) -> dict[str, Any]:
        who.require("admin")
        found = self.store.deliveries(who.org, endpoint_id, limit=limit)
        if found is None:
            raise _missing(endpoint_id)
        return {"items": [d.to_json() for d in found]}

    @retry_transient()
    def replay(self, who: Principal, endpoint_id: str, delivery_id: str) -> dict[str, Any]:
        who.require("admin")
        audit = self._audit(
            who, "webhook.replay", {"endpoint": endpoint_id, "delivery": delivery_id}
        )
        found = self.store.replay(who.org, endpoint_id, delivery_id, self._clock(), audit)
        if found is None:
            raise NotFound(f"No delivery {delivery_id!r} of webhook endpoint {endpoint_id!r}.")
        return found.to_json()


@dataclass
class DeliveryReport:
    queued: int = 0
    delivered: int = 0
    failed: int = 0
    dead: int = 0
    disabled: int = 0

    def as_dict(self) -> dict[str, int]:
        return dict(self.__dict__)

    @property
    def busy(self) -> bool:
        return bool(self.queued or self.delivered or self.failed or self.dead)


class Deliverer:
    """The deliverer: fan-in from its cursor, then send what is due."""

    def __init__(
        self,
        queue: WebhookQueue,
        box: SecretBox,
        sender: Sender,
        settings: WebhookSettings | None = None,
        clock: Callable[[], datetime] | None = None,
        *,
        switched_on: Callable[[str], bool] = lambda org: True,
    ) -> None:
        self.queue = queue
        self.box = box
        self.sender = sender
        # the webhooks flag per org (docs/feature-flags.md): off, the org's changes
        # make no deliveries (the cursor moves on; nothing is kept for later)
        self.switched_on = switched_on
        self.settings = settings or WebhookSettings()
        self._clock = clock or (lambda: datetime.now(UTC))

    def fan_in(self) -> tuple[int, int]:
        """Turn the outbox rows after the cursor into deliveries: (rows read, made)."""
        with self.queue.fan_in(self.settings.batch_size) as batch:
            for item in batch.items:
                if not self.switched_on(item.org):
                    continue
                kind = event_type(item.op, item.action)
                body = payload(
                    kind, item.org, item.doc_id, item.version, item.created_at, seq=item.seq
                )
                for endpoint in batch.endpoints.get(item.org, ()):
                    if endpoint.wants(kind, item.tags):
                        batch.deliveries.append(
                            NewDelivery(
                                item.org, "msg_" + new_id(), endpoint.id, item.seq, kind,
                                item.doc_id, item.version, body,
                            )
                        )  # fmt: skip
            if batch.items:
                batch.advance_to = (batch.items[-1].txid, batch.items[-1].seq)
        return len(batch.items), len(batch.deliveries)

    def _result(self, job: Job, outcome: Outcome, now: datetime) -> Result:
        s = self.settings
        if outcome.ok:
            return Result("delivered", now)
        delay = backoff_s(job.attempts + 1, base_s=s.retry_base_s, cap_s=s.retry_cap_s)
        next_at = now + timedelta(seconds=delay)
        window_end = job.window_start + timedelta(seconds=s.retry_window_s)
        status = "dead" if next_at >= window_end else "pending"
        since = job.failing_since or now
        failing = job.failures + 1 >= s.disable_after_failures and (
            now - since >= timedelta(seconds=s.disable_after_s)
        )
        if not failing:
            return Result(status, next_at)
        reason = (
            f"{job.failures + 1} failed attempts in a row since {iso_z(since)}; "
            f"last: {outcome.error}"
        )[:500]
        audit = AuditEntry(
            "webhook.disable", SYSTEM_ACTOR, details={"endpoint": job.endpoint_id, "reason": reason}
        )
        return Result(status, next_at, disable_reason=reason, audit=audit)

    def send(self, job: Job) -> Outcome:
        context = _context(job.org, job.endpoint_id)
        secrets = [self.box.open(s, context) for s in job.secrets]
        stamp = int(self._clock().timestamp())
        headers = {
            "webhook-id": job.delivery_id,
            "webhook-timestamp": str(stamp),
            "webhook-signature": sign(secrets, job.delivery_id, stamp, job.body),
        }
        return self.sender.send(job.url, headers, job.body)

    def deliver_due(self, report: DeliveryReport, *, deadline: float | None = None) -> None:
        """Send every delivery due now (one pass), ``parallel_sends`` at a time (they are
        heads of distinct documents: order holds); none started after ``deadline``."""
        s = self.settings
        due = self.queue.due(self._clock(), s.batch_size)
        lock = threading.Lock()

        def one(item: tuple[str, str]) -> None:
            if deadline is None or time.monotonic() <= deadline:
                self._deliver_one(*item, report, lock)

        if s.parallel_sends <= 1 or len(due) <= 1:
            for item in due:
                one(item)
            return
        with ThreadPoolExecutor(min(s.parallel_sends, len(due))) as pool:
            list(pool.map(one, due))

    def _deliver_one(
        self, org: str, delivery_id: str, report: DeliveryReport, lock: threading.Lock
    ) -> None:
        now = self._clock()
        lease = now + timedelta(seconds=self.settings.lease_s)
        job = self.queue.lease(org, delivery_id, now, lease)
        if job is None:
            return
        outcome = self.send(job)
        now = self._clock()
        result = self._result(job, outcome, now)
        self.queue.record(job, outcome, result, now)
        with lock:
            report.delivered += outcome.ok
            report.failed += not outcome.ok
            report.dead += result.status == "dead"
            report.disabled += result.disable_reason is not None
        if outcome.ok:
            count("WebhooksDelivered")
            return
        count("WebhookAttemptsFailed")
        if result.status == "dead":
            count("WebhooksDeadLettered")
            logger.warning(
                "webhook dead-lettered", org=org, delivery=delivery_id,
                endpoint=job.endpoint_id, error=outcome.error,
            )  # fmt: skip
        if result.disable_reason is not None:
            count("WebhookEndpointsDisabled")
            logger.warning(
                "webhook endpoint disabled", org=org, endpoint=job.endpoint_id,
                reason=result.disable_reason,
            )  # fmt: skip

    def run_once(self, *, deadline: float | None = None) -> DeliveryReport:
        """Fan in until caught up, then one pass over what is due."""
        report = DeliveryReport()
        while True:
            rows, made = self.fan_in()
            report.queued += made
            if rows == 0 or (deadline is not None and time.monotonic() > deadline):
                break
        self.deliver_due(report, deadline=deadline)
        return report

    def publish_stats(self) -> dict[str, float]:
        lag, backlog, pending, oldest = self.queue.stats()
        gauge("WebhookLag", lag)
        gauge("WebhookPendingAge", oldest)
        return {"lag_s": lag, "backlog": backlog, "pending": pending, "oldest_pending_s": oldest}
