"""Document use cases: create, read, list, change, delete, restore, versions.

Each write is one PostgreSQL transaction (the row, a version row, an outbox
row and an audit row) and, after it commits and *before* the caller answers,
the cache entry is replaced with the new version through a set-if-newer
script.  Reads go to the cache first and fill it on a miss with the version
read from PostgreSQL; because fills and write-backs are both "set if newer",
a slow fill carrying an old version can never overwrite a newer one, so a read
that starts after a write was acknowledged never sees an older version (as
long as the post-commit write-back reached Redis; when Redis is unreachable
the breaker is open and reads bypass the cache, see adapters/redis/cache.py).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Literal

from chalicelib.domain import patching
from chalicelib.domain.access import Acl, acl_of, can_read, split_visibility, viewer_of
from chalicelib.domain.cache import CachedDocument
from chalicelib.domain.errors import (
    Conflict,
    DomainError,
    Gone,
    NotFound,
    PreconditionFailed,
    ValidationFailed,
)
from chalicelib.domain.model import (
    Document,
    DocumentIn,
    ListCursor,
    VersionRecord,
    if_match_satisfied,
    if_none_match_matches,
    make_etag,
    new_id,
    render,
    require_if_match,
    validate_editable,
)
from chalicelib.domain.pagination import decode_token, encode_token, page_scope
from chalicelib.domain.ports.documents import DocumentRepository
from chalicelib.domain.ports.outbox import OutboxNudge
from chalicelib.domain.ports.transaction import Transaction, UnitOfWork
from chalicelib.domain.principal import Principal
from chalicelib.domain.timestamps import iso_z
from chalicelib.service_layer.cache_coherence import CacheCoherence, cache_entry
from chalicelib.service_layer.pii_fields import PiiFields
from chalicelib.service_layer.retry import retry_transient
from chalicelib.service_layer.use_case import (
    DocumentUseCases,
    refuse_hidden,
    require_readable,
    writable,
)
from chalicelib.settings_groups import DocumentSettings

CacheOutcome = Literal["hit", "miss", "bypass"]


@dataclass(frozen=True)
class Rendered:
    """A document ready for the wire: body, validator, where it came from."""

    body: str | None  # None for 304 Not Modified
    etag: str
    version: int
    cache: CacheOutcome

    @property
    def not_modified(self) -> bool:
        return self.body is None


@dataclass(frozen=True)
class Page:
    items: list[dict[str, Any]]
    next_page_token: str | None


@dataclass(frozen=True)
class BatchItem:
    """One item of a batch create: the document it made, or why it failed."""

    index: int
    document: Document | None = None
    error: DomainError | None = None


class DocumentService(DocumentUseCases):
    def __init__(
        self,
        uow: UnitOfWork,
        coherence: CacheCoherence,
        *,
        page_secret: str,
        settings: DocumentSettings = DocumentSettings(),
        nudge: OutboxNudge | None = None,
        clock: Callable[[], datetime] | None = None,
        personal_data: PiiFields | None = None,
    ) -> None:
        super().__init__(uow, coherence, nudge=nudge, clock=clock)
        self.page_secret = page_secret
        self.limits = settings.limits
        self.retention = settings.retention
        # personal-data fields: stored (and cached) sealed, opened on the way out
        self.pii = personal_data or PiiFields()

    # ------------------------------------------------------------------ reads
    @retry_transient()
    def get(self, who: Principal, doc_id: str, *, if_none_match: str | None = None) -> Rendered:
        self._allow(who, "reader", doc_id)
        if if_none_match and self.coherence.before_read():
            validator = self.cache.get_etag(who.org, doc_id)
            if validator is not None and if_none_match_matches(if_none_match, validator[1]):
                return Rendered(None, validator[1], validator[0], "hit")
        cached = self.cache.get(who.org, doc_id) if self.coherence.before_read() else None
        if cached is not None:
            if cached.body is None or (cached.acl and not can_read(who, Acl.decode(cached.acl))):
                raise NotFound(f"Document {doc_id!r} not found.")
            if if_none_match and if_none_match_matches(if_none_match, cached.etag):
                return Rendered(None, cached.etag, cached.version, "hit")
            return Rendered(self.pii.open_rendered(cached.body), cached.etag, cached.version, "hit")
        doc = self.uow.read_document(who.org, doc_id)
        if doc is None:
            raise NotFound(f"Document {doc_id!r} not found.")
        if doc.deleted:
            self.cache.put_if_newer(who.org, doc_id, CachedDocument(doc.version, doc.etag, None))
            raise NotFound(f"Document {doc_id!r} not found.")
        entry = cache_entry(doc)
        self.cache.put_if_newer(who.org, doc_id, entry)  # for every reader, this one or not
        require_readable(who, doc, doc_id)
        body = entry.body or render(doc)
        if if_none_match and if_none_match_matches(if_none_match, doc.etag):
            return Rendered(None, doc.etag, doc.version, "miss")
        return Rendered(self.pii.open_rendered(body), doc.etag, doc.version, "miss")

    @retry_transient()
    def list_documents(
        self, who: Principal, *, limit: int, page_token: str | None, tag: str | None
    ) -> tuple[str, CacheOutcome]:
        """A page of live documents as rendered JSON, and whether it was cached."""
        who.require("reader")
        scope = page_scope(who.org, "GET /documents", tag=tag)
        cursor = decode_token(page_token, self.page_secret, scope)
        # a page holds what its reader may read (domain/access.py): admins share
        # pages, anyone else gets pages of their own (a private document never
        # reaches a page cached for someone who may not read it)
        viewer = viewer_of(who)
        audience = "*admin" if viewer.admin else f"user:{who.sub}"
        shape = f"{audience}\x00{limit}\x00{page_token or ''}\x00{tag or ''}"
        key = hashlib.sha256(shape.encode()).hexdigest()
        cached, generation = self.cache.get_list(who.org, key)
        if cached is not None:
            return self.pii.open_page(cached), "hit"
        after = None
        if cursor is not None:
            try:
                after = ListCursor(datetime.fromisoformat(cursor["c"]), str(cursor["i"]))
            except (KeyError, ValueError, TypeError):
                after = None
        with self.uow.transaction(who.org) as tx:
            docs = tx.documents.list_documents(limit=limit + 1, after=after, tag=tag, viewer=viewer)
        next_token = None
        if len(docs) > limit:
            docs = docs[:limit]
            last = docs[-1]
            next_token = encode_token(
                {"c": last.created_at.isoformat(), "i": last.id}, self.page_secret, scope
            )
        page = json.dumps(
            {"items": [d.to_json() for d in docs], "next_page_token": next_token},
            separators=(",", ":"),
            ensure_ascii=False,
        )
        self.cache.put_list(who.org, key, generation, page)
        return self.pii.open_page(page), "miss"

    @retry_transient()
    def list_versions(
        self, who: Principal, doc_id: str, *, limit: int, page_token: str | None
    ) -> Page:
        self._allow(who, "reader", doc_id)
        scope = page_scope(who.org, "GET /documents/{id}/versions", document=doc_id)
        cursor = decode_token(page_token, self.page_secret, scope)
        before = int(cursor["v"]) if cursor and isinstance(cursor.get("v"), int) else None
        with self._open_readable(who, doc_id) as (tx, doc):
            versions = tx.documents.list_versions(doc_id, limit=limit + 1, before=before)
        # versions of an earlier life of this id (deleted, then reused) are not its history;
        # they have the lowest numbers, so dropping them from the tail keeps paging right
        versions = [v for v in versions if v.created_at >= doc.created_at]
        next_token = None
        if len(versions) > limit:
            versions = versions[:limit]
            next_token = encode_token({"v": versions[-1].version}, self.page_secret, scope)
        items = [self._version_json(doc, v, summary=True) for v in versions]
        return Page(items, next_token)

    @retry_transient()
    def get_version(self, who: Principal, doc_id: str, version: int) -> dict[str, Any]:
        self._allow(who, "reader", doc_id)
        with self._open_readable(who, doc_id) as (tx, doc):
            record = tx.documents.get_version(doc_id, version)
        if record is None or record.created_at < doc.created_at:
            raise NotFound(f"Document {doc_id!r} has no version {version}.")
        return self._version_json(doc, record, summary=False)

    def _version_json(self, doc: Document, v: VersionRecord, *, summary: bool) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": doc.id,
            "version": v.version,
            "title": v.title,
            "author": v.author,
            "action": v.action,
            "deleted": v.deleted,
            "created_at": iso_z(v.created_at),
            "etag": make_etag(doc.org, doc.id, v.version),
        }
        if not summary:
            metadata = self.pii.open(doc.org, doc.id, v.metadata)
            out.update(body=v.body, tags=v.tags, metadata=metadata, content=v.content)
        return out

    # ----------------------------------------------------------------- writes
    @retry_transient()
    def create(
        self, who: Principal, data: Any, *, doc_id: str | None = None, replay: bool = False
    ) -> Document:
        """``replay``: ``doc_id`` was derived from an Idempotency-Key, so an existing
        document of that id whose first version is this very create (same owner,
        same content) is the outcome of an earlier attempt: return it."""
        who.require("writer")
        data, visibility = split_visibility(data)
        clear = self._new_document(who, validate_editable(data, self.limits), doc_id or new_id())
        clear = replace(clear, visibility=visibility or "org")
        doc = self.pii.seal_document(clear)
        with self.uow.transaction(who.org, prefetch=doc.id if replay else None) as tx:
            written = tx.documents.insert(doc, who.change("create"), last=True)
            if written is None:
                earlier = self._earlier_attempt(tx.documents, clear) if replay else None
                if earlier is None:
                    raise PreconditionFailed(f"Document {doc.id!r} already exists.")
                return self.pii.open_document(earlier)
        # an id whose earlier life was purged counts on from there (the version floor)
        doc, clear = replace(doc, version=written), replace(clear, version=written)
        self._publish(doc)
        return clear

    def _earlier_attempt(self, repo: DocumentRepository, doc: Document) -> Document | None:
        current = repo.get(doc.id)
        if current is None or current.owner != doc.owner or current.deleted:
            return None
        first = repo.get_version(doc.id, 1)
        if first is None or first.created_at < current.created_at:
            first = self._first_version(repo, current)  # an id reused after its purge
        if first is None:
            return None
        metadata = self.pii.open(doc.org, doc.id, first.metadata)
        same = (first.title, first.body, first.tags, metadata) == (
            doc.title, doc.body, doc.tags, doc.metadata,
        )  # fmt: skip
        if not same:
            raise ValidationFailed(
                "This Idempotency-Key was already used to create a different document."
            )
        return current

    @staticmethod
    def _first_version(repo: DocumentRepository, current: Document) -> VersionRecord | None:
        """The first version of the document's current life: an id reused after its
        purge starts above the purged life's versions (the version floor), not at 1."""
        first, before = None, None
        while True:
            page = repo.list_versions(current.id, limit=100, before=before)
            life = [v for v in page if v.created_at >= current.created_at]
            if life:
                first = life[-1]
            if len(page) < 100 or len(life) < len(page):
                return first
            before = page[-1].version

    @retry_transient()
    def put(
        self,
        who: Principal,
        doc_id: str,
        data: Any,
        *,
        if_match: str | None,
        if_none_match: str | None,
    ) -> tuple[Document, bool]:
        """Create (True) or replace (False) the document at a client-chosen id."""
        self._allow(who, "writer", doc_id)
        data, visibility = split_visibility(data)
        change = validate_editable(data, self.limits)
        with self._open(who.org, doc_id) as (tx, current):
            live = current is not None and not current.deleted
            if current is not None and (live or not self._past_restore_window(current)):
                if not can_read(who, acl_of(current)):
                    refuse_hidden(doc_id, if_match=if_match, if_none_match=if_none_match)
                writable(who, current)  # 403 before anything
                if visibility is not None and visibility != current.visibility:
                    raise Conflict(
                        f"A replace keeps the visibility; change it with PUT "
                        f"/documents/{doc_id}/visibility (its owner or an admin)."
                    )
            if if_none_match is not None and if_none_match.strip() == "*" and live:
                raise PreconditionFailed(
                    f"Document {doc_id!r} already exists.",
                    headers={"ETag": current.etag} if current else {},
                )
            if current is not None and not live:
                self._refuse_if_restorable(current)
            if current is None:
                if if_match is not None:
                    raise PreconditionFailed(f"Document {doc_id!r} does not exist.")
                doc = self.pii.seal_document(
                    replace(self._new_document(who, change, doc_id), visibility=visibility or "org")
                )
                written = tx.documents.insert(doc, who.change("create"), last=True)
                if written is None:
                    raise PreconditionFailed(f"Document {doc_id!r} was created concurrently.")
                # an id reused after its purge counts on above the purged life's versions
                doc = replace(doc, version=written)
                created, fenced = True, True
            else:
                if live:
                    require_if_match(if_match, current)
                elif if_match is not None:
                    raise PreconditionFailed(f"Document {doc_id!r} does not exist.")
                doc = self.pii.seal_document(current.with_changes(change, at=self._clock()))
                if not live:
                    # past the restore window the id starts a new life: version numbers
                    # keep counting (the rows stay unique), but the history begins at
                    # the new created_at, so the earlier life's versions stay hidden
                    doc = replace(
                        doc, owner=who.sub, created_at=doc.updated_at,
                        visibility=visibility or "org", grants={},
                    )  # fmt: skip
                    tx.grants.clear(doc_id)  # ... and its grants end with the earlier life
                fenced = self._update(
                    tx, doc, current, action="replace" if live else "create", who=who
                )
                created = not live
        self._publish(doc, fenced=fenced)
        # stored sealed; the answer holds the values the caller sent (nothing to decrypt)
        clear = doc if doc.metadata is change.metadata else replace(doc, metadata=change.metadata)
        return clear, created

    @retry_transient()
    def change(
        self,
        who: Principal,
        doc_id: str,
        media_type: str,
        patch: Any,
        *,
        if_match: str | None,
    ) -> Document:
        self._allow(who, "writer", doc_id)
        with self._open_writable(who, doc_id) as (tx, current):
            require_if_match(if_match, current)
            editable = self.pii.open_document(current).editable()  # patches see clear values
            change = patching.apply_patch(media_type, editable, patch, self.limits)
            doc = self.pii.seal_document(current.with_changes(change, at=self._clock()))
            fenced = self._update(tx, doc, current, action="change", who=who)
        self._publish(doc, fenced=fenced)
        return self.pii.open_document(doc)

    @retry_transient()
    def delete(self, who: Principal, doc_id: str, *, if_match: str | None) -> None:
        self._allow(who, "writer", doc_id)
        with self._open_writable(who, doc_id) as (tx, current):
            if if_match is not None and not if_match_satisfied(if_match, current.etag):
                raise PreconditionFailed(
                    "The document has changed since that ETag.", headers={"ETag": current.etag}
                )
            now = self._clock()
            doc = replace(current, version=current.version + 1, updated_at=now, deleted_at=now)
            fenced = self._update(tx, doc, current, action="delete", who=who)
        self._publish(doc, fenced=fenced)

    @retry_transient()
    def restore(self, who: Principal, doc_id: str) -> Document:
        """Undo a soft delete within the retention window (admin)."""
        self._allow(who, "admin", doc_id)
        with self._open(who.org, doc_id) as (tx, current):
            if current is None:
                raise NotFound(f"Document {doc_id!r} not found.")
            if current.deleted_at is None:
                raise Conflict(f"Document {doc_id!r} is not deleted.")
            now = self._clock()
            if now - current.deleted_at > self.retention:
                raise Gone(f"Document {doc_id!r} was deleted too long ago to restore.")
            doc = replace(current, version=current.version + 1, updated_at=now, deleted_at=None)
            fenced = self._update(tx, doc, current, action="restore", who=who)
        self._publish(doc, fenced=fenced)
        return self.pii.open_document(doc)

    @retry_transient()
    def restore_version(
        self, who: Principal, doc_id: str, version: int, *, if_match: str | None
    ) -> Document:
        """Make an old version current again, as a new version."""
        self._allow(who, "writer", doc_id)
        with self._open_writable(who, doc_id) as (tx, current):
            require_if_match(if_match, current)
            old = tx.documents.get_version(doc_id, version)
            if old is None:
                raise NotFound(f"Document {doc_id!r} has no version {version}.")
            if old.created_at < current.created_at:  # an earlier life of this id
                raise NotFound(f"Document {doc_id!r} has no version {version}.")
            old_fields = {"title": old.title, "body": old.body, "tags": old.tags}
            metadata = self.pii.open(current.org, doc_id, old.metadata)
            change = validate_editable({**old_fields, "metadata": metadata}, self.limits)
            doc = self.pii.seal_document(current.with_changes(change, at=self._clock()))
            fenced = self._update(tx, doc, current, action=f"restore-version:{version}", who=who)
        self._publish(doc, fenced=fenced)
        return self.pii.open_document(doc)

    def create_many(self, who: Principal, items: Any, *, limit: int = 100) -> list[BatchItem]:
        """Create up to ``limit`` documents, each in its own transaction.

        One bad or failing item does not stop the others: every item gets its
        own outcome (the API answers them like a 207 Multi-Status body).
        """
        who.require("writer")
        if not isinstance(items, list) or not 1 <= len(items) <= limit:
            raise ValidationFailed(f"'documents' must be a list of 1 to {limit} documents.")
        results: list[BatchItem] = []
        for index, item in enumerate(items):
            try:
                results.append(BatchItem(index, document=self.create(who, item)))
            except DomainError as exc:
                results.append(BatchItem(index, error=exc))
        return results

    # ---------------------------------------------------------------- helpers
    def _new_document(self, who: Principal, change: DocumentIn, doc_id: str) -> Document:
        now = self._clock()
        return Document(
            org=who.org,
            id=doc_id,
            title=change.title,
            body=change.body,
            tags=change.tags,
            metadata=change.metadata,
            version=1,
            owner=who.sub,
            created_at=now,
            updated_at=now,
        )

    def _past_restore_window(self, current: Document) -> bool:
        """A deleted document past its restore window: its id may start a new life
        (of a new owner and ACL), so the earlier life's ACL no longer applies."""
        return current.deleted_at is not None and (
            self._clock() - current.deleted_at > self.retention
        )

    def _refuse_if_restorable(self, current: Document) -> None:
        """A deleted document can be brought back only by an admin restore while it
        is within the restore window; a PUT must not resurrect it (nor its history)."""
        assert current.deleted_at is not None
        if self._clock() - current.deleted_at <= self.retention:
            raise Conflict(
                f"Document {current.id!r} is deleted. Only an admin restore "
                f"(POST /documents/{current.id}/restore) brings it back; its id can be used "
                f"for a new document once the {self.retention.days}-day restore window ends."
            )

    def _update(
        self, tx: Transaction, doc: Document, current: Document, *, action: str, who: Principal
    ) -> bool:
        """The fence, then the conditional update with its records and COMMIT in one
        round trip (the update is the transaction's last statement); returns
        whether fenced.

        Fencing before the update rather than between it and COMMIT keeps the
        guarantee (the fence is in place before the new version can be read)
        and saves a round trip; if the update then loses a race, the fence names
        the version the winner committed, which only sends reads of it to
        PostgreSQL until the winner's publish or the fence's short TTL."""
        change = who.change(action)
        fenced = self.coherence.fence(tx, doc)
        if not tx.documents.update(doc, change, expected_version=current.version, last=True):
            # Someone else committed between our read and our write; a new
            # statement sees their row, so we can name its ETag.
            latest = tx.documents.get(doc.id)
            raise PreconditionFailed(
                "The document was changed concurrently; read it again and retry.",
                headers={"ETag": latest.etag} if latest and not latest.deleted else {},
            )
        return fenced
