"""The ports the service layer depends on; adapters implement them.

Unit tests pass in-memory fakes of these (tests/unit/fakes.py); integration
tests run the real adapters (PostgreSQL, Redis, OpenSearch, S3) against real
servers.  Adapters map their vendor errors into ``domain.errors`` at their
edge, so nothing here mentions a vendor.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, NamedTuple, Protocol

from chalicelib.domain.audit import ChainHead, ChainRow
from chalicelib.domain.changes import FeedCursor
from chalicelib.domain.model import Document
from chalicelib.domain.search_index import SearchDocument
from chalicelib.domain.timestamps import iso_z
from chalicelib.domain.viewer import Viewer


# ------------------------------------------------------------------ documents
@dataclass(frozen=True)
class ListCursor:
    created_at: datetime
    id: str


@dataclass(frozen=True)
class Change:
    """Who changed a document and why: becomes its version, outbox and audit rows."""

    action: str  # create, replace, change, delete, restore, restore-version:N, ...
    actor: str
    request_id: str | None = None  # the server's own id of the request
    client_request_id: str | None = None  # the X-Request-Id the client sent, if any
    details: dict[str, Any] | None = None  # more for the audit row (a grant's user and role)


@dataclass(frozen=True)
class VersionRecord:
    version: int
    title: str
    body: Any
    tags: list[str]
    metadata: dict[str, Any]
    deleted: bool
    author: str
    action: str
    created_at: datetime
    content: dict[str, Any] | None = None


class DocumentRepository(Protocol):
    """Reads and writes of one transaction, scoped to one org."""

    def get(self, doc_id: str) -> Document | None:
        """The document, deleted or not; ``None`` when it never existed in this org."""

    def insert(self, doc: Document, change: Change, *, last: bool = False) -> int | None:
        """Insert a new document with its version/outbox/audit rows; None if the id is taken.

        Returns the version written: ``doc.version``, or above it when the id had
        an earlier life that was purged (its versions keep counting above the
        purge's, which the search index still holds as a delete).

        ``last``: nothing else follows in this transaction, so the adapter may
        send COMMIT with it (one round trip less); the transaction is then over."""

    def update(
        self, doc: Document, change: Change, *, expected_version: int, last: bool = False
    ) -> bool:
        """Replace the row if it is still at ``expected_version`` (optimistic concurrency),
        with its version/outbox/audit rows; False (and nothing written) otherwise.
        ``last`` as for ``insert``."""

    def list_documents(
        self, *, limit: int, after: ListCursor | None, tag: str | None, viewer: Viewer | None = None
    ) -> list[Document]:
        """Live documents, newest first, keyset-paginated; with ``viewer``, only
        those that viewer may read (domain/access.py), filtered in the query."""

    def list_versions(self, doc_id: str, *, limit: int, before: int | None) -> list[VersionRecord]:
        """Versions of a document, newest first."""

    def get_version(self, doc_id: str, version: int) -> VersionRecord | None: ...


# ---------------------------------------------------------------- permissions
@dataclass(frozen=True)
class Grant:
    user: str
    role: str  # reader | writer
    granted_by: str
    granted_at: datetime


class GrantRepository(Protocol):
    """A document's grants, in the transaction's org."""

    def list(self, doc_id: str) -> list[Grant]: ...

    def put(self, doc_id: str, user: str, role: str, granted_by: str) -> None: ...

    def delete(self, doc_id: str, user: str) -> bool:
        """False when there was no such grant."""

    def clear(self, doc_id: str) -> None:
        """Every grant of the document (its id starts a new life)."""


class CacheRepairs(Protocol):
    """The cache repair queue as a transaction adds to it."""

    def add(self, doc_id: str, version: int) -> None:
        """Queue, in this transaction, a repair of ``doc_id``: its cache could not be fenced."""


class Transaction(Protocol):
    """One open database transaction of one org, and the repositories on it:
    what they write commits (or rolls back) together."""

    @property
    def documents(self) -> DocumentRepository: ...

    @property
    def uploads(self) -> ContentRecords: ...

    @property
    def change_feed(self) -> ChangeFeed: ...

    @property
    def cache_repairs(self) -> CacheRepairs: ...

    @property
    def grants(self) -> GrantRepository: ...


class UnitOfWork(Protocol):
    def transaction(
        self, org: str, *, prefetch: str | None = None
    ) -> AbstractContextManager[Transaction]:
        """One database transaction with the tenant set; commits on clean exit.

        ``prefetch``: the id of the document the caller reads first (a hint
        that lets the adapter read it together with BEGIN)."""

    def read_document(self, org: str, doc_id: str) -> Document | None:
        """A single consistent read of one document (deleted or not)."""

    def ping(self) -> None: ...

    def close(self) -> None:
        """Release its connections (tests, the local server's shutdown)."""

    def readable_ids(
        self, org: str, viewer: Viewer, doc_ids: Iterable[str], *, deleted: bool = False
    ) -> set[str]:
        """Which of ``doc_ids`` (live documents of ``org``; with ``deleted``, soft-deleted
        ones too: a subscriber learns of a deletion) ``viewer`` may read: one query (the
        real-time fan-out and search results use it).  The caller checks the org role
        (at least ``reader``) first."""


class OutboxNudge(Protocol):
    """Wakes the outbox's consumers (the search sync, the real-time fan-out)."""

    def __call__(self, doc: Document) -> None:
        """After a commit: wake the consumers for ``doc`` (best effort: a lost
        nudge only delays them until their scheduled sweep)."""


# ---------------------------------------------------------------------- cache
@dataclass(frozen=True)
class CachedDocument:
    version: int
    etag: str
    body: str | None  # the rendered JSON representation; None marks a deleted document
    # the document's ACL (``domain.access.Acl.encode``), "" when open to the whole org:
    # cached with the body so a hit is still one GET
    acl: str = ""


class DocumentCache(Protocol):
    def get(self, org: str, doc_id: str) -> CachedDocument | None:
        """A cached document (or tombstone); None on a miss *or* when the cache is unavailable."""

    def put_if_newer(self, org: str, doc_id: str, entry: CachedDocument) -> None:
        """Store ``entry`` unless the cache already holds a newer version (atomic)."""

    def publish(self, org: str, doc_id: str, entry: CachedDocument) -> bool:
        """After a commit: ``put_if_newer`` plus ``bump_lists``; False if unreachable."""

    def get_etag(self, org: str, doc_id: str) -> tuple[int, str] | None:
        """(version, ETag) of a cached live document, without its body."""

    def fence(self, org: str, doc_id: str, version: int) -> bool:
        """Before commit: refuse fills below ``version``; False if the cache is unreachable."""

    def get_list(self, org: str, key: str) -> tuple[str | None, str]:
        """(cached page or None, generation token to pass to ``put_list``)."""

    def put_list(self, org: str, key: str, generation: str, value: str) -> None: ...

    def bump_lists(self, org: str) -> bool:
        """Make every cached list page of ``org`` unreachable (after a write)."""

    def status(self) -> str:
        """'ok', 'degraded' (breaker open) or 'disabled'."""

    def repair_due(self) -> bool:
        """Whether the documents writers could not fence must be fenced before the
        cache is trusted for the next read (after an outage, and periodically)."""

    def repair_keys(self, items: list[CacheRepair]) -> bool:
        """Fence these documents and move their orgs' list pages on; False if unreachable."""

    def repaired(self) -> None:
        """The repair is done: the next one is due after the repair interval."""

    def repair_failed(self) -> None:
        """The repair could not complete (its queue could not be read): do not trust
        the cache for this read."""


class CacheRepair(NamedTuple):
    """A queued cache repair: a document whose cache entry a writer could not fence."""

    org: str
    doc_id: str
    version: int


class CacheRepairQueue(Protocol):
    """The documents writers could not fence, across orgs (ids and versions only)."""

    def pending(self, limit: int) -> list[CacheRepair]: ...

    def clear(self, items: list[CacheRepair]) -> None: ...


# --------------------------------------------------------------------- search
@dataclass(frozen=True)
class ItemResult:
    """What the index said about one document of a bulk write."""

    index: str
    index_id: str
    ok: bool  # applied, or already superseded (a newer external version is held)
    retryable: bool = False  # the index was busy for this item (429/5xx)
    reason: str | None = None


class SearchIndex(Protocol):
    """The full-text index: versioned indexes behind one alias.

    Writes are external-versioned (the document version), so a replayed or
    reordered write never moves a document backwards.  An unreachable index
    raises ``SearchUnavailable``."""

    @property
    def alias(self) -> str: ...

    def ping(self) -> bool: ...

    def live_index(self) -> str | None:
        """The index the alias points at (None before the first index exists)."""

    def schema_version(self, name: str) -> int:
        """The mapping schema an index was created with."""

    def next_index_name(self) -> str: ...

    def create_index(self, name: str) -> None: ...

    def swap_alias(self, old: str | None, new: str) -> None:
        """Point the alias at ``new`` in one atomic step."""

    def drop_index(self, name: str) -> None: ...

    def refresh(self, index: str | None = None) -> None: ...

    def write(self, docs: Iterable[SearchDocument], indexes: list[str]) -> list[ItemResult]:
        """Index or delete each document in each index; per-item results."""

    def search(self, body: dict[str, Any]) -> dict[str, Any]:
        """One page of hits for a query built by ``domain.search.build_query``."""


@dataclass(frozen=True)
class OutboxRow:
    seq: int
    org: str
    doc_id: str
    version: int
    op: str
    attempts: int
    created_at: datetime

    @property
    def key(self) -> tuple[str, str]:
        return (self.org, self.doc_id)


DocumentState = dict[str, Any]
"""A document's committed row plus its ``content_text``: what ``search_document`` indexes."""


class Claim(Protocol):
    """A claimed batch of outbox rows, inside its open transaction: nothing is
    marked unless the block that holds the claim exits cleanly."""

    @property
    def rows(self) -> list[OutboxRow]:
        """Rows of the documents this consumer locked."""

    @property
    def skipped(self) -> int:
        """Rows left for the consumer that holds their document."""

    @property
    def states(self) -> dict[tuple[str, str], DocumentState | None]:
        """Each locked document's current state (None: purged or not visible)."""

    @property
    def building(self) -> list[str]:
        """Indexes a reindex is building: every batch writes to them as well."""

    def done(self, rows: list[OutboxRow]) -> None: ...

    def retry(
        self, rows: list[OutboxRow], reason: str, delays: list[float], *, counted: bool = True
    ) -> None:
        """Back off; ``counted=False`` for transient refusals (429/5xx of one item),
        which never push a row towards the dead-letter table."""

    def dead_letter(self, rows: list[OutboxRow], reason: str) -> None: ...


@dataclass(frozen=True)
class OutboxStats:
    lag_s: float  # since the oldest unsynced row committed
    backlog: int
    dead_letters: int

    def as_dict(self) -> dict[str, float | int]:
        return {"lag_s": self.lag_s, "backlog": self.backlog, "dead_letters": self.dead_letters}


class Outbox(Protocol):
    """The outbox as the search sync's stream, and the registry of indexes.

    Cross-org maintenance: it sees ids, versions and status of every org, and
    each document's content only under that document's org."""

    def claim(
        self, limit: int, *, only: tuple[str, str] | None = None
    ) -> AbstractContextManager[Claim]:
        """Claim up to ``limit`` due rows (all of one document with ``only``)."""

    def lock_documents(self, keys: set[tuple[str, str]]) -> AbstractContextManager[Claim]:
        """Lock documents (waiting for a consumer that holds one) and read their state."""

    def exclusive_reindex(self) -> AbstractContextManager[bool]:
        """Held for a whole reindex: True if this caller got it (one reindex at a time)."""

    def building_indexes(self) -> list[str]: ...

    def register_building(self, name: str) -> None: ...

    def documents_page(self, after: tuple[str, str] | None, limit: int) -> list[DocumentState]:
        """Live documents in (org, id) order, after ``after`` (the backfill)."""

    def count_live_documents(self) -> int: ...

    def changed_since_registration(self, name: str) -> dict[tuple[str, str], int]:
        """Documents (and their newest outbox version) of every transaction that
        could have committed after ``name`` was registered."""

    def retire(self, new: str, old: str | None, grace: timedelta) -> None: ...

    def abandon(self, name: str) -> None: ...

    def expired_indexes(self) -> list[str]: ...

    def stats(self) -> OutboxStats: ...

    def dead_letters(self, org: str | None = None, limit: int = 1000) -> list[dict[str, Any]]: ...

    def requeue_dead_letters(self, org: str | None = None) -> int: ...

    def prune(self, older_than: timedelta, *, batch: int = 5000, max_batches: int = 20) -> int:
        """Delete processed rows older than ``older_than``; pending rows are kept."""


@dataclass(frozen=True)
class FeedRow:
    """One change in an org's feed."""

    seq: int
    txid: int
    doc_id: str
    version: int
    op: str
    created_at: datetime


class ChangeFeed(Protocol):
    """The changes feed of the transaction's org."""

    def changes(
        self, since: FeedCursor | None, limit: int, *, viewer: Viewer | None = None
    ) -> tuple[list[FeedRow], FeedCursor]:
        """Rows after ``since`` (None: from now on) and the cursor to resume from;
        with ``viewer``, only rows of documents that viewer may read now."""


# -------------------------------------------------------------------- content
@dataclass(frozen=True)
class ObjectInfo:
    size: int
    etag: str | None
    version_id: str | None
    content_type: str | None


class BlobStore(Protocol):
    """The object store (S3) as the content use cases need it."""

    def presign_put(
        self, key: str, *, content_type: str, sha256_b64: str | None, size: int | None,
        expires_s: int,
    ) -> tuple[str, dict[str, str]]:  # fmt: skip
        """(URL, headers the client must send with the PUT)."""

    def presign_get(
        self, key: str, *, version_id: str | None, content_type: str, disposition: str,
        expires_s: int,
    ) -> str:  # fmt: skip
        ...

    def head(self, key: str, *, version_id: str | None = None) -> ObjectInfo | None: ...

    def chunks(self, key: str, *, version_id: str | None, chunk_bytes: int) -> Iterator[bytes]:
        """The object's bytes, ``chunk_bytes`` at a time (nothing if it is gone)."""

    def delete(self, key: str, *, version_id: str | None = None) -> None: ...

    def ping(self) -> None:
        """Raises ``DependencyUnavailable`` when the store cannot be reached."""


@dataclass(frozen=True)
class Upload:
    """An upload the service issued (its row in ``content_uploads``)."""

    org: str
    doc_id: str
    upload_id: str
    key: str
    content_type: str
    sha256: str | None
    size: int | None
    filename: str | None
    max_bytes: int
    actor: str
    request_id: str | None
    created_at: datetime
    expires_at: datetime
    status: str = "pending"  # pending | ready | rejected | superseded | orphaned
    object_version: str | None = None
    object_etag: str | None = None
    result: dict[str, Any] | None = None


class ContentRecords(Protocol):
    """Upload and extracted-text rows, inside the document transaction."""

    def add_upload(self, upload: Upload) -> None: ...

    def get_upload(self, upload_id: str, *, lock: bool = False) -> Upload | None: ...

    def finish_upload(
        self, upload_id: str, *, status: str, result: dict[str, Any] | None,
        object_version: str | None, object_etag: str | None,
    ) -> None:  # fmt: skip
        ...

    def put_text(
        self, doc_id: str, version: int, upload_id: str, text: str, truncated: bool
    ) -> None: ...


class StaleUpload(NamedTuple):
    org: str
    upload_id: str
    doc_id: str


class StaleUploads(Protocol):
    def __call__(self, cutoff: datetime, limit: int) -> list[StaleUpload]:
        """Pending uploads of every org whose URL expired before ``cutoff`` (ids only)."""


# ---------------------------------------------------------------- idempotency
@dataclass(frozen=True)
class IdempotencyRecord:
    """A stored outcome of a request made with an ``Idempotency-Key``."""

    key: str  # the hashed (org, sub, route, key)
    status: str  # INPROGRESS | COMPLETED
    expiry: int  # epoch seconds
    in_progress_expiry: int | None = None  # epoch milliseconds
    data: str | None = None  # the response, serialized
    validation: str | None = None  # the hash of the request body


class IdempotencyRecords(Protocol):
    """Idempotency records of one org, each call its own tenant-scoped transaction."""

    def get(self, org: str, key: str) -> IdempotencyRecord | None: ...

    def claim(self, org: str, record: IdempotencyRecord, *, now_s: int, now_ms: int) -> bool:
        """Store ``record`` if its key is free, expired, or an abandoned in-progress
        record (past ``in_progress_expiry``); False if another record holds it."""

    def update(self, org: str, record: IdempotencyRecord) -> None: ...

    def delete(self, org: str, key: str) -> None: ...


# ------------------------------------------- audit trail and personal data (audit)
@dataclass(frozen=True)
class AuditEntry:
    """One audit row to record.  ``actor`` is the user id: the database stores
    the org's pseudonym of it instead (migration 0009)."""

    action: str
    actor: str
    doc_id: str | None = None
    version: int | None = None
    prev_version: int | None = None
    request_id: str | None = None
    details: dict[str, Any] | None = None


@dataclass(frozen=True)
class AuditRecord:
    """One audit row as read back: ``actor`` is the user id while the user's
    pseudonym mapping exists, the pseudonym once they were erased."""

    seq: int
    at: datetime
    actor: str | None
    pseudonymous: bool
    action: str
    doc_id: str | None
    version: int | None
    prev_version: int | None
    request_id: str | None
    details: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        return {
            "seq": self.seq, "at": iso_z(self.at), "actor": self.actor,
            "pseudonymous": self.pseudonymous, "action": self.action, "document": self.doc_id,
            "version": self.version, "prev_version": self.prev_version,
            "request_id": self.request_id, "details": self.details,
        }  # fmt: skip


@dataclass(frozen=True)
class AuditFilter:
    doc_id: str | None = None
    user: str | None = None
    since: datetime | None = None
    before_seq: int | None = None  # keyset: newest first, rows below this position


@dataclass(frozen=True)
class AuditExportRecord:
    """What the scheduled export wrote for one org and period."""

    org: str
    period_start: datetime
    period_end: datetime
    object_key: str
    sha256: str
    rows: int
    first_seq: int | None
    last_seq: int | None
    last_hash: bytes | None


class AuditTrail(Protocol):
    """An org's audit rows; each call is its own tenant-scoped transaction."""

    def record(self, org: str, entry: AuditEntry) -> None: ...

    def page(self, org: str, where: AuditFilter, limit: int) -> list[AuditRecord]:
        """Rows newest first (by chain position)."""

    def chain(self, org: str, *, after_seq: int, limit: int) -> list[ChainRow]:
        """Rows as chained (pseudonyms, jsonb text), in chain order."""

    def head(self, org: str) -> ChainHead | None: ...

    def orgs(self) -> list[str]:
        """Every org with an audit chain (cross-org: names only)."""

    def between(self, org: str, start: datetime, end: datetime) -> list[ChainRow]:
        """Rows with ``start <= at < end``, in chain order."""

    def exported(self, org: str, period_start: datetime) -> AuditExportRecord | None: ...

    def record_export(self, record: AuditExportRecord) -> bool:
        """Remember an exported period; False if it was recorded already."""


@dataclass(frozen=True)
class ExportJob:
    org: str
    id: str
    requested_by: str
    state: str  # pending | ready | failed
    object_key: str | None
    error: str | None
    created_at: datetime
    finished_at: datetime | None


class ExportJobs(Protocol):
    def create(self, org: str, job_id: str, user: str, request_id: str | None) -> ExportJob: ...

    def get(self, org: str, job_id: str) -> ExportJob | None: ...

    def due(self, limit: int) -> list[tuple[str, str]]:
        """(org, id) of pending jobs of every org, oldest first (ids only)."""

    def finish(self, org: str, job_id: str, *, state: str, key: str | None, error: str | None
               ) -> None: ...  # fmt: skip


@dataclass(frozen=True)
class ErasurePlan:
    user: str
    reassign_to: str | None  # None: the user's documents are deleted
    pii_fields: tuple[str, ...]


class PersonalData(Protocol):
    """What the store holds about one user of an org (export and erasure)."""

    def known_user(self, org: str, user: str) -> bool:
        """Whether ``user`` acted in, or owns a document of, ``org``."""

    def collect(self, org: str, user: str) -> dict[str, Any]:
        """The user's documents, the grants involving them and their audit entries."""

    def granted_documents(self, org: str, user: str) -> list[str]:
        """Ids of the documents of ``org`` on which ``user`` holds a grant."""

    def erase(self, org: str, plan: ErasurePlan, change: Change) -> tuple[str, list[Document]]:
        """In one transaction: reassign or delete the user's documents (with their
        version, outbox and audit rows), scrub the PII fields, replace the user id
        by its pseudonym where rows keep it, audit the erasure (``change``) and
        delete the pseudonym mapping.  Returns the pseudonym and the changed documents."""


class ArchiveStore(Protocol):
    """A bucket the service writes whole objects to (audit exports, personal-data
    archives)."""

    def put(self, key: str, data: bytes, *, content_type: str) -> str:
        """Store ``data`` (SHA-256 checked by the store); returns its hex SHA-256."""

    def exists(self, key: str) -> bool: ...

    def presign_get(self, key: str, *, filename: str, expires_s: int) -> str: ...

    def read(self, key: str) -> bytes | None:
        """The object's bytes (small objects: manifests); None if there is none."""

    def keys(self, prefix: str) -> list[str]: ...


# ------------------------------------------------ personal data and purge
class FieldCipher(Protocol):
    """Envelope encryption of single JSON values (personal-data metadata fields;
    the envelope format is domain/pii.py).  Every failure (no key, a wrong key, an
    unreachable KMS) raises ``KeyUnavailable``, naming no value."""

    @property
    def active_kid(self) -> str:
        """The master key new values are encrypted under."""

    def encrypt(self, value: Any, *, context: str, blind: bytes | None) -> dict[str, Any]:
        """An envelope of ``value`` bound to ``context``; with a blind index of
        ``blind`` (domain.pii.blind_input) when given and a blind key is configured."""

    def decrypt(self, envelope: dict[str, Any], *, context: str) -> Any: ...

    def blind_index(self, blind: bytes) -> str | None:
        """The keyed hash a filter looks for (None: no blind key configured)."""


class PiiReencryptionStore(Protocol):
    """Stored metadata of every document and version, for the re-encryption run
    after a key rotation (cross-org ids through a maintenance function, each
    document rewritten under its own org)."""

    def document_ids(self, after: tuple[str, str] | None, limit: int) -> list[tuple[str, str]]:
        """(org, id) of every document, deleted or not, in (org, id) order."""

    def rewrite_metadata(
        self, org: str, doc_id: str, rewrite: Callable[[dict[str, Any]], dict[str, Any] | None]
    ) -> int:
        """Apply ``rewrite`` to the metadata of the document and of each of its
        versions (None: leave that one); returns how many rows changed."""


@dataclass(frozen=True)
class PurgeTask:
    """A purged document whose outside traces (objects, cache, subscriptions) are
    still to be removed: recorded in the purge's own transaction, so none is lost."""

    id: int
    org: str
    doc_id: str
    keys: list[str]  # the content object keys of every upload the document had
    attempts: int = 0
    version: int = 0  # the purge's outbox version (set by the run that purged it)


class PurgeStore(Protocol):
    """The purge's database side (adapters/postgres/purge.py)."""

    def due(self, cutoff: datetime, limit: int) -> list[tuple[str, str]]:
        """(org, id) of documents deleted before ``cutoff`` (ids only, every org)."""

    def purge(
        self, org: str, doc_id: str, cutoff: datetime, *, request_id: str | None = None
    ) -> PurgeTask | None:
        """One transaction of ``org``: remove the document, its versions, text,
        uploads and grants; record a purge task, a 'purge' outbox row and the
        pseudonymous audit row (the version before and after, and ``request_id``:
        the run's id).  None if it is no longer due (restored, reused)."""

    def pending(self, limit: int) -> list[PurgeTask]:
        """Purge tasks whose outside traces are not all removed yet (every org)."""

    def finish(self, task: PurgeTask) -> None: ...

    def failed(self, task: PurgeTask, reason: str) -> None: ...


class ObjectPurger(Protocol):
    def delete_every_version(self, keys: list[str]) -> int:
        """Delete every version and delete marker of each key (exact keys only);
        returns how many were deleted.  Raises ``DependencyUnavailable``."""


class CacheEviction(Protocol):
    def evict_document(self, org: str, doc_id: str) -> bool:
        """Remove the document's entries and move its org's list pages on; False if
        the cache could not be reached."""


class SubscriptionDropper(Protocol):
    """The real-time registry's hook: drop every subscription to a document
    (wired by the composition root once the real-time registry exists)."""

    def __call__(self, org: str, doc_id: str) -> None: ...
