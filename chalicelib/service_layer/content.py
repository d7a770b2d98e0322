"""Large-content use cases: start an upload, process an uploaded object, download.

The bytes never pass through a Lambda's memory: the API hands out presigned
URLs, and the S3-triggered processor streams each object once (size, SHA-256,
sniffing, text extraction; see domain/content/).

Ordering and duplicates.  Each upload has an id (a ULID) recorded in
``content_uploads`` and in the document's ``content`` when it starts; the
document points at its *latest* upload.  Processing an object records a new
document version only when (a) its upload is still pending and (b) it is still
the document's latest upload — checked under a row lock in the same
transaction that writes the version, outbox, audit and extracted-text rows.
So a duplicate event finds the upload finished and changes nothing; an older
upload finishing after a newer one was started is ``superseded`` (its object
deleted), and a crash before COMMIT leaves everything as it was for the
redelivery.  Object deletions happen after COMMIT and are idempotent, so a
crash between the two is repaired by the redelivered event.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from chalicelib.domain.content.inspect import Inspection, Inspector
from chalicelib.domain.content.keys import ContentKey, parse_content_key
from chalicelib.domain.content.policy import (
    content_disposition,
    parse_upload_request,
    sha256_b64,
)
from chalicelib.domain.content.uploads import Upload
from chalicelib.domain.errors import Conflict, NotFound, PreconditionFailed
from chalicelib.domain.model import Change, Document, if_match_satisfied, new_id
from chalicelib.domain.ports.content import BlobStore, StaleUploads
from chalicelib.domain.ports.outbox import OutboxNudge
from chalicelib.domain.ports.transaction import Transaction, UnitOfWork
from chalicelib.domain.principal import Principal
from chalicelib.domain.timestamps import iso_z
from chalicelib.observability import count, logger
from chalicelib.service_layer.cache_coherence import CacheCoherence
from chalicelib.service_layer.retry import retry_transient
from chalicelib.service_layer.use_case import DocumentUseCases
from chalicelib.settings_groups import ContentSettings

_FINAL_JUNK = ("rejected", "superseded", "orphaned")  # their objects are deleted
# the metric each outcome of process_object counts (chalicelib/metric_names.py)
_OUTCOME_METRIC = {
    "ready": "ContentReady",
    "rejected": "ContentRejected",
    "superseded": "ContentSuperseded",
    "orphaned": "ContentOrphaned",
    "duplicate": "ContentDuplicate",
}


@dataclass(frozen=True)
class UploadTicket:
    """What a client needs to PUT the bytes straight to S3."""

    upload_url: str
    headers: dict[str, str]
    expires_at: datetime
    max_bytes: int
    upload_id: str
    document: Document

    def to_json(self) -> dict[str, Any]:
        return {
            "upload_url": self.upload_url,
            "method": "PUT",
            "headers": self.headers,
            "expires_at": iso_z(self.expires_at, "seconds"),
            "max_bytes": self.max_bytes,
            "upload_id": self.upload_id,
            "version": self.document.version,
            "etag": self.document.etag,
            "content": self.document.content,
        }


@dataclass(frozen=True)
class Download:
    """A short-lived presigned GET for one ready content, and what it holds."""

    url: str
    content: dict[str, Any]


class ContentService(DocumentUseCases):
    def __init__(
        self,
        uow: UnitOfWork,
        coherence: CacheCoherence,
        blobs: BlobStore,
        stale_uploads: StaleUploads,
        *,
        settings: ContentSettings,
        nudge: OutboxNudge | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        super().__init__(uow, coherence, nudge=nudge, clock=clock)
        self.blobs = blobs
        self.stale_uploads = stale_uploads
        self.bucket = settings.bucket
        self.policy = settings.policy
        self.upload_expiry = timedelta(seconds=min(settings.upload_expiry_s, 900))
        self.download_expiry_s = settings.download_expiry_s
        self.chunk_bytes = settings.chunk_bytes

    # ----------------------------------------------------------------- upload
    @retry_transient()
    def start_upload(
        self, who: Principal, doc_id: str, data: Any, *, if_match: str | None
    ) -> UploadTicket:
        """Record a pending upload as a new document version; hand out a PUT URL.

        The key is built only from server-side values (org, id, a fresh upload
        id), so a client cannot write anywhere else in the bucket.
        """
        self._allow(who, "writer", doc_id)
        request = parse_upload_request(data, self.policy)
        upload_id = new_id()
        key = ContentKey(who.org, doc_id, upload_id).key
        now = self._clock()
        expires_at = now + self.upload_expiry
        pending: dict[str, Any] = {
            "status": "pending",
            "upload_id": upload_id,
            "content_type": request.content_type,
        }
        if request.filename:
            pending["filename"] = request.filename
        with self._open_writable(who, doc_id) as (tx, current):
            if if_match is not None and not if_match_satisfied(if_match, current.etag):
                raise PreconditionFailed(
                    "The document has changed since that ETag; read it again and retry.",
                    headers={"ETag": current.etag},
                )
            doc = replace(current, version=current.version + 1, updated_at=now, content=pending)
            self._update(tx, doc, current, who.change("content-upload"))
            tx.uploads.add_upload(
                Upload(
                    org=who.org,
                    doc_id=doc_id,
                    upload_id=upload_id,
                    key=key,
                    content_type=request.content_type,
                    sha256=request.sha256,
                    size=request.size,
                    filename=request.filename,
                    max_bytes=self.policy.max_bytes,
                    actor=who.sub,
                    request_id=who.request_id,
                    created_at=now,
                    expires_at=expires_at,
                )
            )
        self._publish(doc)
        url, headers = self.blobs.presign_put(
            key,
            content_type=request.content_type,
            sha256_b64=sha256_b64(request.sha256) if request.sha256 else None,
            size=request.size,
            expires_s=int(self.upload_expiry.total_seconds()),
        )
        return UploadTicket(url, headers, expires_at, self.policy.max_bytes, upload_id, doc)

    # --------------------------------------------------------------- download
    @retry_transient()
    def download(self, who: Principal, doc_id: str, version: int | None = None) -> Download:
        """A presigned GET for the content of the document (or of one old version).

        404 when there is none (or it was rejected), 409 while it is pending.
        Old versions' objects are never deleted, so their content stays
        downloadable; the S3 version id pins the exact bytes that were checked.
        """
        self._allow(who, "reader", doc_id)
        with self._open_readable(who, doc_id) as (tx, doc):
            content = doc.content
            if version is not None:
                record = tx.documents.get_version(doc_id, version)
                if record is None or record.created_at < doc.created_at:  # an earlier life
                    raise NotFound(f"Document {doc_id!r} has no version {version}.")
                content = record.content
            if not content:
                raise NotFound(f"Document {doc_id!r} has no content.")
            if content.get("status") == "pending":
                raise Conflict(
                    "The content is still being uploaded or processed; retry shortly.",
                    headers={"Retry-After": "2"},
                )
            if content.get("status") != "ready":
                raise NotFound(f"The content was rejected: {content.get('reason')}.")
            upload = tx.uploads.get_upload(str(content["upload_id"]))
        key = ContentKey(who.org, doc_id, str(content["upload_id"])).key
        url = self.blobs.presign_get(
            key,
            version_id=upload.object_version if upload else None,
            content_type=str(content.get("content_type") or "application/octet-stream"),
            disposition=content_disposition(content.get("filename"), f"{doc_id}"),
            expires_s=self.download_expiry_s,
        )
        return Download(url, content)

    # ------------------------------------------------------------- processing
    def process_object(
        self,
        bucket: str,
        key: str,
        *,
        version_id: str | None = None,
        size: int | None = None,
    ) -> str:
        """Handle one ObjectCreated notification; returns what happened.

        ``key`` is decoded.  Outcomes: ready, rejected, superseded, orphaned,
        duplicate, missing (object already gone), ignored (not ours).
        """
        parsed = parse_content_key(key) if bucket == self.bucket else None
        if parsed is None:
            logger.warning("ignored object: not a key this service issues", bucket=bucket, key=key)
            count("ContentIgnored")
            return "ignored"
        upload = self._read_upload(parsed)
        if upload is None:
            logger.warning("ignored object: no upload was issued for it", key=key)
            count("ContentIgnored")
            return "ignored"
        if upload.status != "pending":
            return self._after_the_fact(upload, version_id)
        info = self.blobs.head(key, version_id=version_id)
        if info is None:
            logger.info("object already gone", key=key)
            return "missing"
        result = self._inspect(upload, info.size, info.version_id)
        outcome = self._record(parsed, result, info.version_id, info.etag)
        if outcome in _FINAL_JUNK:
            self.blobs.delete(key, version_id=info.version_id)
        logger.info(
            "content processed",
            key=key,
            outcome=outcome,
            size=result.size,
            reason=result.reason,
            declared_size=size,
        )
        count(_OUTCOME_METRIC[outcome])
        return outcome

    @retry_transient()
    def _read_upload(self, parsed: ContentKey) -> Upload | None:
        with self.uow.transaction(parsed.org) as tx:
            return tx.uploads.get_upload(parsed.upload_id)

    def _after_the_fact(self, upload: Upload, version_id: str | None) -> str:
        """An event for an upload that is already finished: make sure nothing is left
        behind (its deletion may have been lost in a crash), change nothing else."""
        if upload.status in _FINAL_JUNK:
            self.blobs.delete(upload.key, version_id=version_id or upload.object_version)
        elif version_id and upload.object_version and version_id != upload.object_version:
            # the presigned URL was used again: the checked bytes stay, these go
            logger.warning("extra object version for a finished upload deleted", key=upload.key)
            self.blobs.delete(upload.key, version_id=version_id)
        return "duplicate"

    def _inspect(self, upload: Upload, size: int, version_id: str | None) -> Inspection:
        """Stream the object once, in chunks; stop early once the verdict is a rejection."""
        inspector = Inspector(
            declared_type=upload.content_type,
            declared_sha256=upload.sha256,
            max_bytes=upload.max_bytes,
            policy=self.policy,
        )
        if size > upload.max_bytes:  # S3 told us already: do not read it at all
            inspector.size = size
            inspector.reason = f"too_large: the object is over the {upload.max_bytes}-byte limit"
            return inspector.finish()
        for chunk in self.blobs.chunks(
            upload.key, version_id=version_id, chunk_bytes=self.chunk_bytes
        ):
            inspector.feed(chunk)
            if inspector.done:
                break
        return inspector.finish()

    @retry_transient()
    def _record(
        self, parsed: ContentKey, result: Inspection, version_id: str | None, etag: str | None
    ) -> str:
        """The verdict as one transaction: version + outbox + audit + text + upload rows."""
        for _ in range(5):  # optimistic: a concurrent edit of the document means try again
            doc: Document | None = None
            with self._open(parsed.org, parsed.doc_id) as (tx, current):
                upload = tx.uploads.get_upload(parsed.upload_id, lock=True)
                if upload is None or upload.status != "pending":
                    return "duplicate"  # a concurrent delivery finished it first
                content = result.content(upload.upload_id, upload.filename)
                if current is None or current.deleted:
                    status = "orphaned"
                elif (current.content or {}).get("upload_id") != upload.upload_id:
                    status = "superseded"  # a newer upload was started: it wins
                else:  # the verdict becomes the document's next version
                    status = content["status"]
                    doc = replace(
                        current, version=current.version + 1, updated_at=self._clock(),
                        content=content,
                    )  # fmt: skip
                    action = "content-ready" if result.accepted else "content-rejected"
                    change = Change(action, upload.actor, upload.request_id)
                    if not tx.documents.update(doc, change, expected_version=current.version):
                        continue
                    self.coherence.fence(tx, doc)
                    if result.accepted:
                        tx.uploads.put_text(
                            doc.id, doc.version, upload.upload_id, result.text,
                            result.text_truncated,
                        )  # fmt: skip
                tx.uploads.finish_upload(
                    upload.upload_id,
                    status=status,
                    result=content,
                    object_version=version_id,
                    object_etag=etag,
                )
            if doc is not None:
                self._publish(doc)
            return status
        raise Conflict("The document kept changing while its content was recorded.")

    # ------------------------------------------------------------- expiry
    def expire_uploads(
        self, *, grace: timedelta = timedelta(hours=1), limit: int = 100
    ) -> dict[str, int]:
        """Finish uploads whose URL expired more than ``grace`` ago without an event.

        An object that did arrive (its notification lost or late) is processed
        now; otherwise the upload is rejected with reason ``expired`` in the
        usual transaction (new document version, outbox, audit), so a document
        is never left ``pending`` for ever.  Safe to run concurrently and
        repeatedly: each upload is finished under its row lock, once.
        """
        outcomes: dict[str, int] = {}
        cutoff = self._clock() - grace
        for org, upload_id, doc_id in self.stale_uploads(cutoff, limit):
            parsed = ContentKey(org, doc_id, upload_id)
            info = self.blobs.head(parsed.key)
            if info is not None:
                outcome = self.process_object(self.bucket, parsed.key, version_id=info.version_id)
            else:
                expired = Inspection(
                    size=0, sha256="", content_type="",
                    reason="expired: nothing was uploaded before the upload URL expired",
                )  # fmt: skip
                outcome = self._record(parsed, expired, None, None)
                count("ContentExpired")
            outcomes[outcome] = outcomes.get(outcome, 0) + 1
        if outcomes:
            logger.info("stale uploads finished", extra={"outcomes": outcomes})
        return outcomes

    # ---------------------------------------------------------------- helpers
    def _update(self, tx: Transaction, doc: Document, current: Document, change: Change) -> None:
        if not tx.documents.update(doc, change, expected_version=current.version):
            raise PreconditionFailed(
                "The document was changed concurrently; read it again and retry."
            )
        self.coherence.fence(tx, doc)
