"""Signed webhooks (docs/webhooks.md): endpoints, deliveries, the events, the
Standard Webhooks signature and the retry schedule.  Pure.

* Events come from outbox rows (one per committed change): the row's ``op``
  and the action of the version it names (``document_versions.action``) give
  the event type (``event_type``).  Every type the API offers is produced.
* A payload carries the change: type, document id, version, the receiver's own
  org, when; never the document's body, title, tags or any person's id.
* Signatures (Standard Webhooks): ``webhook-signature: v1,<base64 HMAC-SHA256>``
  of ``{webhook-id}.{webhook-timestamp}.{body}`` with the secret's bytes (the
  base64 after ``whsec_``); during a rotation's overlap the previous secret
  signs too, the signatures space-separated.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import random
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, get_args

from chalicelib.domain.errors import ValidationFailed
from chalicelib.domain.timestamps import iso_z as iso

EventType = Literal[
    "document.created",
    "document.updated",
    "document.deleted",
    "document.restored",
    "grant.changed",
    "upload.processed",
    "document.purged",
]
EVENT_TYPES: tuple[str, ...] = get_args(EventType)  # the OpenAPI schema uses EventType too
SECRET_PREFIX = "whsec_"  # noqa: S105 - the format's prefix, not a secret
SECRET_BYTES = 32
MAX_EVENTS_TAGS = 50
MAX_ENDPOINTS_PER_ORG = 20
_ACTIONS = {
    "create": "document.created",
    "replace": "document.updated",
    "change": "document.updated",
    "delete": "document.deleted",
    "restore": "document.restored",
    "grant.put": "grant.changed",
    "grant.delete": "grant.changed",
    "visibility.change": "grant.changed",
    "content-ready": "upload.processed",
    "content-rejected": "upload.processed",
}


def event_type(op: str, action: str | None) -> str:
    """The event an outbox row is: its ``op`` first (a purge, a delete), then the
    version's action; a version already purged away reads as an update."""
    if op == "purge":
        return "document.purged"
    if op == "delete":
        return "document.deleted"
    if action is None:
        return "document.updated"
    if action.startswith("restore-version:") or action.startswith("erasure-"):
        return "document.updated"
    return _ACTIONS.get(action, "document.updated")


def payload(
    kind: str, org: str, doc_id: str, version: int, at: datetime, *, seq: int
) -> dict[str, Any]:
    """The body of a delivery (Standard Webhooks' ``type``/``timestamp``/``data``)."""
    return {
        "type": kind,
        "timestamp": iso(at),
        "data": {"org": org, "id": doc_id, "version": version, "seq": seq},
    }


def new_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(os.urandom(SECRET_BYTES)).decode()


def secret_bytes(secret: str) -> bytes:
    return base64.b64decode(secret.removeprefix(SECRET_PREFIX))


def sign(secrets: Iterable[str], msg_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` header: one ``v1,<sig>`` per secret, space-separated."""
    signed = f"{msg_id}.{timestamp}.".encode() + body
    out = []
    for secret in secrets:
        mac = hmac.new(secret_bytes(secret), signed, hashlib.sha256).digest()
        out.append("v1," + base64.b64encode(mac).decode())
    return " ".join(out)


def encode_body(data: dict[str, Any]) -> bytes:
    return json.dumps(data, separators=(",", ":"), sort_keys=True).encode()


def backoff_s(
    attempts: int, *, base_s: float, cap_s: float, rnd: random.Random | None = None
) -> float:
    """Seconds before attempt ``attempts + 1``: exponential, capped, full jitter in
    the upper half (so retries of many deliveries spread out but never shrink to 0)."""
    delay = min(cap_s, base_s * (2 ** max(0, attempts - 1)))
    jitter: float = rnd.random() if rnd is not None else random.random()  # noqa: S311
    return float(delay * (0.5 + 0.5 * jitter))


def _fail(loc: str, msg: str) -> ValidationFailed:
    return ValidationFailed(
        'The body must be {"url": "https://...", "events": [...], "tags": [...]} '
        f"(events from {', '.join(EVENT_TYPES)}; tags optional).",
        errors=[{"loc": ["body", loc], "msg": msg, "type": "value_error"}],
    )


def parse_registration(data: Any) -> tuple[Any, tuple[str, ...], tuple[str, ...]]:
    """``(url, events, tags)`` of a ``POST /webhooks`` body (the URL is checked
    by ``webhook_urls.validate_url``)."""
    if not isinstance(data, dict):
        raise _fail("body", "must be an object")
    extra = sorted(set(data) - {"url", "events", "tags"})
    if extra:
        raise _fail(extra[0], "unknown field")
    events = data.get("events")
    if not isinstance(events, list) or not events or len(events) > len(EVENT_TYPES):
        raise _fail("events", f"must list 1-{len(EVENT_TYPES)} event types")
    for e in events:
        if e not in EVENT_TYPES:
            raise _fail("events", f"unknown event type {e!r}")
    tags = data.get("tags") or []
    if not isinstance(tags, list) or len(tags) > MAX_EVENTS_TAGS:
        raise _fail("tags", f"must be a list of at most {MAX_EVENTS_TAGS} tags")
    for t in tags:
        if not isinstance(t, str) or not 1 <= len(t) <= 64 or t != t.strip() or "\x00" in t:
            raise _fail("tags", "each tag must be 1-64 characters")
    return data.get("url"), tuple(dict.fromkeys(events)), tuple(dict.fromkeys(tags))


def parse_overlap(data: Any, *, default_s: int, max_s: int) -> int:
    """The overlap of a rotation, in seconds (``{"overlap_s": n}``, optional)."""
    if data is None:
        return default_s
    if not isinstance(data, dict) or set(data) - {"overlap_s"}:
        raise ValidationFailed(
            'The body must be {"overlap_s": seconds} or empty.',
            errors=[{"loc": ["body"], "msg": "unknown field", "type": "value_error"}],
        )
    value = data.get("overlap_s", default_s)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= max_s:
        raise ValidationFailed(
            f"overlap_s must be an integer from 0 to {max_s}.",
            errors=[{"loc": ["body", "overlap_s"], "msg": "out of range", "type": "value_error"}],
        )
    return value


@dataclass(frozen=True)
class Endpoint:
    id: str
    url: str
    events: tuple[str, ...]
    tags: tuple[str, ...]
    status: str = "active"
    created_at: datetime | None = None
    disabled_at: datetime | None = None
    disabled_reason: str | None = None
    previous_until: datetime | None = None

    def wants(self, kind: str, tags: Iterable[str] | None) -> bool:
        """This endpoint's filter: the event type, and one of its tags when it names
        any (a purge, whose tags are gone, reaches every endpoint that wants purges)."""
        if kind not in self.events:
            return False
        if not self.tags or tags is None:
            return True
        return bool(set(self.tags) & set(tags))

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "url": self.url,
            "events": list(self.events),
            "tags": list(self.tags),
            "status": self.status,
            "created_at": iso(self.created_at) if self.created_at else None,
            "disabled_at": iso(self.disabled_at) if self.disabled_at else None,
            "disabled_reason": self.disabled_reason,
            "previous_secret_until": iso(self.previous_until) if self.previous_until else None,
        }


@dataclass(frozen=True)
class Attempt:
    n: int
    at: datetime
    status_code: int | None
    error: str | None
    duration_ms: int

    def to_json(self) -> dict[str, Any]:
        return {
            "n": self.n,
            "at": iso(self.at),
            "status_code": self.status_code,
            "error": self.error,
            "duration_ms": self.duration_ms,
        }


@dataclass(frozen=True)
class Delivery:
    id: str
    endpoint_id: str
    event_type: str
    doc_id: str
    version: int
    status: str
    attempts: int
    created_at: datetime
    next_attempt_at: datetime
    finished_at: datetime | None = None
    last_error: str | None = None
    history: tuple[Attempt, ...] = field(default=())

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "endpoint_id": self.endpoint_id,
            "type": self.event_type,
            "document": self.doc_id,
            "version": self.version,
            "status": self.status,
            "attempts": self.attempts,
            "created_at": iso(self.created_at),
            "next_attempt_at": iso(self.next_attempt_at) if self.status == "pending" else None,
            "finished_at": iso(self.finished_at) if self.finished_at else None,
            "last_error": self.last_error,
            "history": [a.to_json() for a in self.history],
        }


@dataclass(frozen=True)
class Job:
    """A leased delivery, with what sending it needs."""

    org: str
    delivery_id: str
    endpoint_id: str
    url: str
    secrets: tuple[str, ...]
    body: bytes
    attempts: int  # made before this one
    window_start: datetime
    failures: int  # the endpoint's consecutive failed attempts before this one
    failing_since: datetime | None  # since when they fail (None: the last one succeeded)


@dataclass(frozen=True)
class Outcome:
    """One attempt's result: a 2xx status is a success; anything else a failure."""

    status_code: int | None
    error: str | None
    duration_ms: int

    @property
    def ok(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300
