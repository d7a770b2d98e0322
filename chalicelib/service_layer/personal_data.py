"""Personal-data use cases: the caller's export (an access request) and an admin's
erasure of a user (docs/compliance.md).

Export is asynchronous: ``start_export`` records a job (and its audit row)
and answers at once; a worker (functions/export_worker.py on a schedule, the
local server's export loop) collects the caller's documents, the grants
involving them and their audit entries, writes one JSON archive under the
org's prefix of the exports bucket and marks the job ready; the status then
carries a short-lived presigned URL, for the requester only.

Erasure runs in one transaction (``PersonalData.erase``); afterwards each
changed document is published to the cache and the search sync is woken,
as after any write.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from chalicelib.domain.errors import DependencyUnavailable, NotFound, ValidationFailed
from chalicelib.domain.model import Change, new_id
from chalicelib.domain.personal_data import ErasurePlan, ExportJob
from chalicelib.domain.ports.archive import ArchiveStore
from chalicelib.domain.ports.outbox import OutboxNudge
from chalicelib.domain.ports.personal_data import ExportJobs, PersonalData
from chalicelib.domain.principal import Principal
from chalicelib.domain.timestamps import iso_z
from chalicelib.domain.user_id import validate_user_id
from chalicelib.service_layer.cache_coherence import CacheCoherence
from chalicelib.service_layer.pii_fields import PiiFields
from chalicelib.service_layer.retry import retry_transient
from chalicelib.settings_groups import PersonalDataSettings

ARCHIVE_FORMAT = "docs-personal-data-export/1"


def validate_user(user: Any, where: list[str]) -> str:
    """A user id under the one rule (domain/user_id.py), 422 naming ``where`` otherwise."""
    return validate_user_id(user, list(where))


def parse_erasure(body: Any, user: str) -> str | None:
    """The body ``{"documents": "delete" | "reassign:<user>"}``: the new owner, or
    None to delete the user's documents."""
    if not isinstance(body, dict) or set(body) != {"documents"}:
        raise ValidationFailed(
            'The body must be {"documents": "delete"} or {"documents": "reassign:<user>"}.',
            errors=[{"loc": ["body"], "msg": "expected exactly the key 'documents'",
                     "type": "value_error"}],
        )  # fmt: skip
    mode = body["documents"]
    if mode == "delete":
        return None
    if isinstance(mode, str) and mode.startswith("reassign:"):
        target = validate_user(mode.removeprefix("reassign:"), ["body", "documents"])
        if target == user:
            raise ValidationFailed(
                "The documents cannot be reassigned to the user being erased.",
                errors=[{"loc": ["body", "documents"], "msg": "same user", "type": "value_error"}],
            )
        return target
    raise ValidationFailed(
        '\'documents\' must be "delete" or "reassign:<user>".',
        errors=[{"loc": ["body", "documents"], "msg": "unknown mode", "type": "value_error"}],
    )


# What the requester of a failed export is told (``reason``): whether to try again
# later or now; the exception's type stays in the job row and the audit trail.
EXPORT_FAILURE_REASONS = ("dependency-unavailable", "internal-error")


def export_failure(exc: BaseException) -> str:
    """The ``error`` a failed export job records: its reason, then the type of what
    failed, e.g. ``dependency-unavailable: DependencyUnavailable``."""
    reason = (
        "dependency-unavailable" if isinstance(exc, DependencyUnavailable) else "internal-error"
    )
    return f"{reason}: {type(exc).__name__}"


def export_failure_reason(error: str | None) -> str:
    """The reason part of a recorded ``error`` (rows written before it had one are
    ``internal-error``)."""
    reason = (error or "").split(":", 1)[0]
    return reason if reason in EXPORT_FAILURE_REASONS else "internal-error"


def export_object_key(org: str, job_id: str) -> str:
    return f"exports/{quote(org, safe='')}/{job_id}.json"


class PersonalDataService:
    def __init__(
        self,
        jobs: ExportJobs,
        personal: PersonalData,
        coherence: CacheCoherence,
        *,
        settings: PersonalDataSettings = PersonalDataSettings(),
        archive: Callable[[], ArchiveStore],
        nudge: OutboxNudge | None = None,
        clock: Callable[[], datetime] | None = None,
        pii: PiiFields | None = None,
        revoke: Callable[[Principal, str, str], object] | None = None,
        end_streams: Callable[[str, str], object] | None = None,
        open_notifications: Callable[[str, str, Any], Any] | None = None,
    ) -> None:
        self.jobs = jobs
        self.personal = personal
        self.coherence = coherence
        self._archive = archive
        self.nudge = nudge
        self.url_expiry_s = settings.export_url_expiry_s
        self.export_batch = settings.export_batch  # jobs per worker run
        self._clock = clock or (lambda: datetime.now(UTC))
        # the declared personal-data fields: opened for their subject in the archive,
        # removed by an erasure
        self.pii = pii or PiiFields()
        # removes one grant as a versioned, audited write (AccessService.delete_grant):
        # the cached and indexed ACL of the document follow, as after any grant change
        self.revoke = revoke
        # ends the user's real-time streams (org, user): RealtimeService.revoke_user
        self.end_streams = end_streams
        # the subject's notification settings with the address in clear
        # (NotificationSettingsService.export)
        self.open_notifications = open_notifications

    # ------------------------------------------------------------------ export
    @retry_transient()
    def start_export(self, who: Principal) -> ExportJob:
        """Record the job (and its audit row, in the same transaction)."""
        who.require("reader")
        return self.jobs.create(who.org, new_id(), who.sub, who.request_id)

    def export_status(self, who: Principal, job_id: str) -> dict[str, Any]:
        """The job's state; when ready, a presigned URL.  Only the requester sees a job."""
        who.require("reader")
        job = self.jobs.get(who.org, job_id) if len(job_id) <= 64 else None
        if job is None or job.requested_by != who.sub:
            raise NotFound(f"Export {job_id!r} not found.")
        out: dict[str, Any] = {
            "id": job.id,
            "state": job.state,
            "created_at": iso_z(job.created_at),
            "finished_at": iso_z(job.finished_at) if job.finished_at else None,
        }
        if job.state == "ready" and job.object_key:
            out["url"] = self._archive().presign_get(
                job.object_key, filename=f"export-{job.id}.json", expires_s=self.url_expiry_s
            )
            out["url_expires_in"] = self.url_expiry_s
        if job.state == "failed":
            out["error"] = "The export failed; request a new one."
            out["reason"] = export_failure_reason(job.error)
        return out

    def run_due(self, limit: int = 10) -> int:
        """Process pending jobs of every org; the number processed."""
        due = self.jobs.due(limit)
        for org, job_id in due:
            self.run(org, job_id)
        return len(due)

    def run(self, org: str, job_id: str) -> None:
        job = self.jobs.get(org, job_id)
        if job is None or job.state != "pending":
            return
        try:
            data = self.personal.collect(org, job.requested_by)
            data["documents"] = [self._opened(org, d) for d in data.get("documents", [])]
            if self.open_notifications is not None and "notification_settings" in data:
                data["notification_settings"] = self.open_notifications(
                    org, job.requested_by, data["notification_settings"]
                )
            archive = {
                "format": ARCHIVE_FORMAT, "org": org, "subject": job.requested_by,
                "job": job.id, "generated_at": iso_z(self._clock()), **data,
            }  # fmt: skip
            body = json.dumps(archive, default=_json_default, ensure_ascii=False, indent=1)
            key = export_object_key(org, job.id)
            self._archive().put(key, body.encode(), content_type="application/json")
        except Exception as exc:
            self.jobs.finish(org, job_id, state="failed", key=None, error=export_failure(exc))
            raise
        self.jobs.finish(org, job_id, state="ready", key=key, error=None)

    def _opened(self, org: str, doc: dict[str, Any]) -> dict[str, Any]:
        """A document of the archive with its personal-data fields in clear: the
        subject owns it and the archive is theirs (an access request gets the data
        itself, not the envelope the database keeps).  Only the requester can fetch
        the archive (a presigned URL on their own job)."""
        metadata = self.pii.open(org, str(doc.get("id")), doc.get("metadata"))
        return doc if metadata is doc.get("metadata") else {**doc, "metadata": metadata}

    # ----------------------------------------------------------------- erasure
    def erase(self, who: Principal, user: str, body: Any) -> dict[str, Any]:
        """POST /users/{user}/erasure (admins)."""
        who.require("admin")
        validate_user(user, ["path", "user"])
        target = parse_erasure(body, user)
        if target is not None and not self.personal.known_user(who.org, target):
            raise ValidationFailed(
                f"{target!r} is not a user of this organisation (nothing of theirs is known).",
                errors=[{"loc": ["body", "documents"], "msg": "unknown user",
                         "type": "value_error"}],
            )  # fmt: skip
        plan = ErasurePlan(user, target, self.pii.names)
        action = "erasure-reassign" if target else "erasure-delete"
        change = Change(action, who.sub, who.request_id, who.client_request_id)
        if self.end_streams is not None:  # first: an outage fails the erasure before it runs
            self.end_streams(who.org, user)
        if self.revoke is not None:  # first: nobody keeps reading through a stale ACL
            for doc_id in self.personal.granted_documents(who.org, user):
                try:
                    self.revoke(who, doc_id, user)
                except NotFound:  # a deleted document: the erasure below drops its grant
                    continue
        _, docs = self.personal.erase(who.org, plan, change)
        for doc in docs:
            if self.nudge is not None:
                self.nudge(doc)
            self.coherence.publish(doc, fenced=True)
        return {
            "user": user,
            "documents": {"mode": "reassign" if target else "delete", "count": len(docs),
                          **({"to": target} if target else {})},
            "pii_fields_scrubbed": list(self.pii.names),
            "audit": "pseudonymised",
        }  # fmt: skip


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return iso_z(value)
    if isinstance(value, bytes | memoryview):
        return bytes(value).hex()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")
