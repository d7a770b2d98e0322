"""In-memory fakes of the ports, for unit tests of the service layer only.

Each fake keeps the one property of its adapter that the use cases rely on
(a transaction commits all or nothing, the cache stores only newer versions,
the index keeps external versions, a claim marks rows only when it exits
cleanly), and nothing else.
"""

from __future__ import annotations

import copy
import hashlib
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from chalicelib.domain.access import Grant
from chalicelib.domain.cache import CachedDocument, CacheRepair
from chalicelib.domain.changes import FeedCursor, FeedRow
from chalicelib.domain.content.uploads import ObjectInfo, StaleUpload, Upload
from chalicelib.domain.errors import DependencyUnavailable, SearchUnavailable
from chalicelib.domain.idempotency import IdempotencyRecord
from chalicelib.domain.model import Change, Document, ListCursor, VersionRecord
from chalicelib.domain.outbox import DocumentState, OutboxRow, OutboxStats
from chalicelib.domain.search_index import SCHEMA_VERSION, ItemResult, SearchDocument
from chalicelib.domain.viewer import Viewer


class FakeTransaction:
    def __init__(self, store: FakeUnitOfWork, org: str) -> None:
        self.documents = FakeDocuments(store, org)
        self.uploads = FakeContentRecords(store, org)
        self.change_feed = FakeChangeFeed(store, org)
        self.cache_repairs = FakeCacheRepairs(store, org)
        self.grants = FakeGrants(store, org)


class FakeDocuments:
    def __init__(self, store: FakeUnitOfWork, org: str) -> None:
        self.store = store
        self.org = org

    def get(self, doc_id: str) -> Document | None:
        return self.store.pending.get((self.org, doc_id)) or self.store.docs.get((self.org, doc_id))

    def insert(self, doc: Document, change: Change, *, last: bool = False) -> int | None:
        if (self.org, doc.id) in self.store.docs:
            return None
        self.store.pending[(self.org, doc.id)] = doc
        self._record(doc, change.action, change.actor)
        return doc.version

    def update(
        self, doc: Document, change: Change, *, expected_version: int, last: bool = False
    ) -> bool:
        current = self.get(doc.id)
        if current is None or current.version != expected_version:
            return False
        self.store.pending[(self.org, doc.id)] = doc
        self._record(doc, change.action, change.actor)
        return True

    def _record(self, doc: Document, action: str, actor: str) -> None:
        self.store.pending_versions.append(
            (
                self.org,
                doc.id,
                VersionRecord(
                    version=doc.version,
                    title=doc.title,
                    body=copy.deepcopy(doc.body),
                    tags=list(doc.tags),
                    metadata=dict(doc.metadata),
                    deleted=doc.deleted,
                    author=actor,
                    action=action,
                    created_at=doc.updated_at,
                    content=doc.content,
                ),
            )
        )
        op = "delete" if doc.deleted else "upsert"
        self.store.pending_outbox.append((self.org, doc.id, doc.version, op, doc.updated_at))

    def list_documents(
        self, *, limit: int, after: ListCursor | None, tag: str | None, viewer: Viewer | None = None
    ) -> list[Document]:
        docs = [d for (o, _), d in self.store.docs.items() if o == self.org and not d.deleted]
        docs = [d for d in docs if viewer_reads(viewer, d)]
        if tag:
            docs = [d for d in docs if tag in d.tags]
        docs.sort(key=lambda d: (d.created_at, d.id), reverse=True)
        if after:
            docs = [d for d in docs if (d.created_at, d.id) < (after.created_at, after.id)]
        return docs[:limit]

    def list_versions(self, doc_id: str, *, limit: int, before: int | None) -> list[VersionRecord]:
        vs = [v for (o, i, v) in self.store.versions if o == self.org and i == doc_id]
        vs = [v for v in vs if before is None or v.version < before]
        return sorted(vs, key=lambda v: v.version, reverse=True)[:limit]

    def get_version(self, doc_id: str, version: int) -> VersionRecord | None:
        for o, i, v in self.store.versions:
            if (o, i, v.version) == (self.org, doc_id, version):
                return v
        return None


class FakeUnitOfWork:
    """Documents, versions, the outbox, upload rows and the cache repair queue."""

    def __init__(self) -> None:
        self.docs: dict[tuple[str, str], Document] = {}
        self.versions: list[tuple[str, str, VersionRecord]] = []
        self.outbox: list[OutboxRow] = []
        self.uploads: dict[tuple[str, str], Upload] = {}
        self.texts: dict[tuple[str, str, int], tuple[str, bool]] = {}
        self.cache_repairs: list[CacheRepair] = []
        self.grant_rows: dict[tuple[str, str, str], Grant] = {}
        self.transactions = 0
        self._begin()

    def _begin(self) -> None:
        self.pending: dict[tuple[str, str], Document] = {}
        self.pending_versions: list[tuple[str, str, VersionRecord]] = []
        self.pending_outbox: list[tuple[str, str, int, str, datetime]] = []
        self.pending_cache_repairs: list[tuple[str, str, int]] = []
        self.pending_uploads: dict[tuple[str, str], Upload] = {}
        self.pending_texts: dict[tuple[str, str, int], tuple[str, bool]] = {}
        self.pending_grants: dict[tuple[str, str, str], Grant | None] = {}

    def read_document(self, org: str, doc_id: str) -> Document | None:
        self.transactions += 1
        return self.docs.get((org, doc_id))

    @contextmanager
    def transaction(self, org: str, *, prefetch: str | None = None) -> Iterator[FakeTransaction]:
        self._begin()
        try:
            yield FakeTransaction(self, org)
        except BaseException:
            self._begin()
            raise
        self.docs.update(self.pending)
        self.versions += self.pending_versions
        for o, doc_id, version, op, at in self.pending_outbox:
            seq = len(self.outbox) + 1
            self.outbox.append(OutboxRow(seq, o, doc_id, version, op, 0, at))
        self.cache_repairs += [CacheRepair(*d) for d in self.pending_cache_repairs]
        self.uploads.update(self.pending_uploads)
        self.texts.update(self.pending_texts)
        for key, grant in self.pending_grants.items():
            if grant is None:
                self.grant_rows.pop(key, None)
            else:
                self.grant_rows[key] = grant
        self._begin()
        self.transactions += 1

    def ping(self) -> None:
        return None

    def close(self) -> None:
        return None

    def readable_ids(
        self, org: str, viewer: Viewer, doc_ids: Iterable[str], *, deleted: bool = False
    ) -> set[str]:
        self.transactions += 1
        found = (self.docs.get((org, i)) for i in doc_ids)
        return {
            d.id for d in found
            if d is not None and (deleted or not d.deleted) and viewer_reads(viewer, d)
        }  # fmt: skip

    def state(self, org: str, doc_id: str) -> DocumentState | None:
        """What the outbox reads for the index: the row plus its newest extracted text."""
        doc = self.docs.get((org, doc_id))
        if doc is None:
            return None
        texts = [(v, t) for (o, i, v), (t, _) in self.texts.items() if (o, i) == (org, doc_id)]
        text = max((vt for vt in texts if vt[0] <= doc.version), default=(0, None))[1]
        return {
            "org": doc.org,
            "id": doc.id,
            "title": doc.title,
            "body": doc.body,
            "tags": list(doc.tags),
            "owner": doc.owner,
            "visibility": doc.visibility,
            "grantees": sorted(doc.grants),
            "version": doc.version,
            "created_at": doc.created_at,
            "updated_at": doc.updated_at,
            "deleted_at": doc.deleted_at,
            "content": doc.content,
            "content_text": text,
        }


def viewer_reads(viewer: Viewer | None, doc: Document) -> bool:
    """The read rule (domain/access.py) as the SQL of adapters/postgres/access.py writes it."""
    if viewer is None or viewer.admin or doc.visibility == "org":
        return True
    return viewer.user == doc.owner or viewer.user in doc.grants


class FakeGrants:
    def __init__(self, store: FakeUnitOfWork, org: str) -> None:
        self.store = store
        self.org = org

    def _rows(self) -> dict[tuple[str, str, str], Grant]:
        rows = dict(self.store.grant_rows)
        for key, grant in self.store.pending_grants.items():
            if grant is None:
                rows.pop(key, None)
            else:
                rows[key] = grant
        return rows

    def list(self, doc_id: str) -> list[Grant]:
        rows = self._rows()
        return [rows[k] for k in sorted(rows) if k[:2] == (self.org, doc_id)]

    def put(self, doc_id: str, user: str, role: str, granted_by: str) -> None:
        grant = Grant(user, role, granted_by, datetime.now(UTC))
        self.store.pending_grants[(self.org, doc_id, user)] = grant

    def delete(self, doc_id: str, user: str) -> bool:
        existed = (self.org, doc_id, user) in self._rows()
        self.store.pending_grants[(self.org, doc_id, user)] = None
        return existed

    def clear(self, doc_id: str) -> None:
        for key in self._rows():
            if key[:2] == (self.org, doc_id):
                self.store.pending_grants[key] = None


class FakeCacheRepairs:
    def __init__(self, store: FakeUnitOfWork, org: str) -> None:
        self.store = store
        self.org = org

    def add(self, doc_id: str, version: int) -> None:
        self.store.pending_cache_repairs.append((self.org, doc_id, version))


class FakeCacheRepairQueue:
    """The cache repair queue of a ``FakeUnitOfWork`` (``reachable=False``: the
    database is out)."""

    def __init__(self, store: FakeUnitOfWork) -> None:
        self.store = store
        self.reachable = True

    def pending(self, limit: int) -> list[CacheRepair]:
        if not self.reachable:
            raise DependencyUnavailable("The database is unavailable; retry shortly.")
        return self.store.cache_repairs[:limit]

    def clear(self, items: list[CacheRepair]) -> None:
        self.store.cache_repairs = [d for d in self.store.cache_repairs if d not in items]


class FakeContentRecords:
    def __init__(self, store: FakeUnitOfWork, org: str) -> None:
        self.store = store
        self.org = org

    def add_upload(self, upload: Upload) -> None:
        self.store.pending_uploads[(self.org, upload.upload_id)] = upload

    def get_upload(self, upload_id: str, *, lock: bool = False) -> Upload | None:
        key = (self.org, upload_id)
        return self.store.pending_uploads.get(key) or self.store.uploads.get(key)

    def finish_upload(
        self, upload_id: str, *, status: str, result: dict[str, Any] | None,
        object_version: str | None, object_etag: str | None,
    ) -> None:  # fmt: skip
        upload = self.get_upload(upload_id)
        assert upload is not None
        self.store.pending_uploads[(self.org, upload_id)] = replace(
            upload, status=status, result=result, object_version=object_version,
            object_etag=object_etag,
        )  # fmt: skip

    def put_text(
        self, doc_id: str, version: int, upload_id: str, text: str, truncated: bool
    ) -> None:
        self.store.pending_texts[(self.org, doc_id, version)] = (text, truncated)


class FakeCache:
    def __init__(self) -> None:
        self.docs: dict[tuple[str, str], CachedDocument] = {}
        self.lists: dict[tuple[str, str, str], str] = {}
        self.generation: dict[str, int] = {}
        self.fences: list[tuple[str, str, int]] = []
        self.reachable = True

    def get(self, org: str, doc_id: str) -> CachedDocument | None:
        return self.docs.get((org, doc_id))

    def put_if_newer(self, org: str, doc_id: str, entry: CachedDocument) -> None:
        current = self.docs.get((org, doc_id))
        if current is None or current.version < entry.version:
            self.docs[(org, doc_id)] = entry

    def get_list(self, org: str, key: str) -> tuple[str | None, str]:
        gen = str(self.generation.get(org, 0))
        return self.lists.get((org, gen, key)), gen

    def put_list(self, org: str, key: str, generation: str, value: str) -> None:
        self.lists[(org, generation, key)] = value

    def publish(self, org: str, doc_id: str, entry: CachedDocument) -> bool:
        if not self.reachable:
            return False
        self.put_if_newer(org, doc_id, entry)
        return self.bump_lists(org)

    def bump_lists(self, org: str) -> bool:
        self.generation[org] = self.generation.get(org, 0) + 1
        return True

    def get_etag(self, org: str, doc_id: str) -> tuple[int, str] | None:
        entry = self.docs.get((org, doc_id))  # like Redis: no validator for an entry with an ACL
        return (entry.version, entry.etag) if entry and entry.body and not entry.acl else None

    def fence(self, org: str, doc_id: str, version: int) -> bool:
        if not self.reachable:
            return False
        self.fences.append((org, doc_id, version))
        self.docs.pop((org, doc_id), None)
        return True

    def status(self) -> str:
        return "ok"

    # repair: due before every read (no interval), and only while reachable
    def repair_due(self) -> bool:
        return self.reachable

    def repair_keys(self, items: list[CacheRepair]) -> bool:
        if not self.reachable:
            return False
        for org, doc_id, version in items:
            self.fence(org, doc_id, version)
            self.bump_lists(org)
        return True

    def repaired(self) -> None:
        self.repairs = getattr(self, "repairs", 0) + 1

    def repair_failed(self) -> None:
        self.repair_failures = getattr(self, "repair_failures", 0) + 1


# ---------------------------------------------------------------------- search
class FakeSearchIndex:
    """Versioned indexes behind an alias, with external versions (a write of an
    older version than the one held is acknowledged and ignored, like a 409)."""

    def __init__(self, alias: str = "docs") -> None:
        self.alias = alias
        self.indexes: dict[str, dict[str, tuple[int, dict[str, Any] | None]]] = {}
        self.schemas: dict[str, int] = {}
        self.live: str | None = None
        self.reachable = True
        self.refusals: dict[str, ItemResult] = {}  # index id -> what the index says about it
        self.writes = 0
        self.queries: list[dict[str, Any]] = []

    def _check(self) -> None:
        if not self.reachable:
            raise SearchUnavailable()

    def ping(self) -> bool:
        return self.reachable

    def live_index(self) -> str | None:
        self._check()
        return self.live

    def schema_version(self, name: str) -> int:
        return self.schemas[name]

    def next_index_name(self) -> str:
        return f"{self.alias}-v{len(self.schemas) + 1}"

    def create_index(self, name: str) -> None:
        self._check()
        self.indexes.setdefault(name, {})
        self.schemas.setdefault(name, SCHEMA_VERSION)

    def swap_alias(self, old: str | None, new: str) -> None:
        self.live = new

    def drop_index(self, name: str) -> None:
        self.indexes.pop(name, None)

    def refresh(self, index: str | None = None) -> None:
        self._check()

    def write(self, docs: Iterable[SearchDocument], indexes: list[str]) -> list[ItemResult]:
        self._check()
        self.writes += 1
        results = []
        for index in indexes:
            name = self.live if index == self.alias else index
            assert name is not None, "a write through an alias that points nowhere"
            held = self.indexes[name]
            for doc in docs:
                refused = self.refusals.get(doc.index_id)
                if refused is not None:
                    results.append(replace(refused, index=name, index_id=doc.index_id))
                    continue
                if doc.index_id not in held or held[doc.index_id][0] < doc.version:
                    held[doc.index_id] = (doc.version, doc.source)
                results.append(ItemResult(name, doc.index_id, ok=True))
        return results

    def documents(self, index: str | None = None) -> dict[str, tuple[int, dict[str, Any]]]:
        """index id -> (version, source) of every live (not deleted) entry."""
        name = index or self.live
        assert name is not None
        return {k: (v, s) for k, (v, s) in self.indexes[name].items() if s is not None}

    def search(self, body: dict[str, Any]) -> dict[str, Any]:
        """Only what the use case relies on: the org filter, newest first, search_after."""
        self._check()
        self.queries.append(body)
        filters = body["query"]["bool"]["filter"]
        org = filters[0]["term"]["org"]
        acl = [f["bool"]["should"] for f in filters if "bool" in f]
        hidden = {
            i for clause in body["query"]["bool"].get("must_not", ()) for i in clause["terms"]["id"]
        }
        hits = []
        for _, source in self.documents().values():
            if source["org"] != org or source["id"] in hidden:
                continue
            if acl and not (
                source.get("visibility") != "private"
                or acl[0][1]["term"]["readers"] in source.get("readers", [])
            ):
                continue
            millis = int(datetime.fromisoformat(source["updated_at"]).timestamp() * 1000)
            hits.append({"_score": None, "_source": source, "sort": [millis, source["id"]]})
        hits.sort(key=lambda h: (-h["sort"][0], h["sort"][1]))
        total = len(hits)
        after = body.get("search_after")
        if after is not None:
            hits = [h for h in hits if (-h["sort"][0], h["sort"][1]) > (-after[0], after[1])]
        return {"hits": {"hits": hits[: body["size"]], "total": {"value": total}}}


@dataclass
class FakeClaim:
    rows: list[OutboxRow]
    skipped: int
    states: dict[tuple[str, str], DocumentState | None]
    building: list[str]
    marks: list[tuple[str, list[OutboxRow], Any]] = field(default_factory=list)

    def done(self, rows: list[OutboxRow]) -> None:
        self.marks.append(("done", rows, None))

    def retry(
        self, rows: list[OutboxRow], reason: str, delays: list[float], *, counted: bool = True
    ) -> None:
        assert len(rows) == len(delays)
        self.marks.append(("retry", rows, (reason, delays, counted)))

    def dead_letter(self, rows: list[OutboxRow], reason: str) -> None:
        self.marks.append(("dead", rows, reason))


class FakeOutbox:
    """The sync's view of the outbox of a ``FakeUnitOfWork``: claims, marks, the
    index registry.  ``held`` are documents another consumer is syncing."""

    def __init__(self, store: FakeUnitOfWork) -> None:
        self.store = store
        self.processed: set[int] = set()
        self.attempts: dict[int, int] = {}
        self.due_at: dict[int, float] = {}
        self.dead: dict[int, str] = {}
        self.retries: list[tuple[int, str, float, bool]] = []
        self.held: set[tuple[str, str]] = set()
        self.registry: dict[str, str] = {}  # index name -> building | live | retired
        self.reindexing = False
        self.now = 0.0  # the clock rows are due by (seconds)

    def _row(self, row: OutboxRow) -> OutboxRow:
        return replace(row, attempts=self.attempts.get(row.seq, 0))

    def pending(self) -> list[OutboxRow]:
        return [
            self._row(r)
            for r in self.store.outbox
            if r.seq not in self.processed and r.seq not in self.dead
        ]

    def _states(self, keys: Iterable[tuple[str, str]]) -> dict[tuple[str, str], Any]:
        return {key: self.store.state(*key) for key in keys}

    @contextmanager
    def claim(self, limit: int, *, only: tuple[str, str] | None = None) -> Iterator[FakeClaim]:
        due = [r for r in self.pending() if self.due_at.get(r.seq, 0.0) <= self.now]
        if only is not None:
            due = [r for r in due if r.key == only]
        due = due[:limit]
        mine = [r for r in due if r.key not in self.held]
        claim = FakeClaim(
            mine, len(due) - len(mine), self._states({r.key for r in mine}), self._building()
        )
        yield claim  # an exception here rolls the claim back: nothing is marked
        for kind, rows, detail in claim.marks:
            for row in rows:
                if kind == "done":
                    self.processed.add(row.seq)
                elif kind == "dead":
                    self.dead[row.seq] = detail
                else:
                    reason, delays, counted = detail
                    delay = delays[rows.index(row)]
                    self.retries.append((row.seq, reason, delay, counted))
                    self.due_at[row.seq] = self.now + delay
                    if counted:
                        self.attempts[row.seq] = self.attempts.get(row.seq, 0) + 1

    @contextmanager
    def lock_documents(self, keys: set[tuple[str, str]]) -> Iterator[FakeClaim]:
        yield FakeClaim([], 0, self._states(keys), self._building())

    @contextmanager
    def exclusive_reindex(self) -> Iterator[bool]:
        if self.reindexing:
            yield False
            return
        self.reindexing = True
        try:
            yield True
        finally:
            self.reindexing = False

    def _building(self) -> list[str]:
        return [name for name, state in self.registry.items() if state == "building"]

    def building_indexes(self) -> list[str]:
        return self._building()

    def register_building(self, name: str) -> None:
        self.registry[name] = "building"

    def documents_page(self, after: tuple[str, str] | None, limit: int) -> list[DocumentState]:
        keys = sorted(k for k, d in self.store.docs.items() if not d.deleted)
        keys = [k for k in keys if after is None or k > after][:limit]
        return [s for s in self._states(keys).values() if s is not None]

    def count_live_documents(self) -> int:
        return sum(1 for d in self.store.docs.values() if not d.deleted)

    def changed_since_registration(self, name: str) -> dict[tuple[str, str], int]:
        return {}

    def retire(self, new: str, old: str | None, grace: timedelta) -> None:
        self.registry[new] = "live"
        if old is not None:
            self.registry[old] = "retired" if grace else "expired"

    def abandon(self, name: str) -> None:
        self.registry.pop(name, None)

    def expired_indexes(self) -> list[str]:
        return [name for name, state in self.registry.items() if state == "expired"]

    def stats(self) -> OutboxStats:
        pending = self.pending()
        return OutboxStats(lag_s=0.0, backlog=len(pending), dead_letters=len(self.dead))

    def dead_letters(self, org: str | None = None, limit: int = 1000) -> list[dict[str, Any]]:
        return [{"seq": seq, "reason": reason} for seq, reason in self.dead.items()][:limit]

    def requeue_dead_letters(self, org: str | None = None) -> int:
        count = len(self.dead)
        self.dead.clear()
        return count

    def prune(self, older_than: timedelta, *, batch: int = 5000, max_batches: int = 20) -> int:
        self.pruned_older_than = older_than
        return 0


class FakeChangeFeed:
    """An org's feed over a ``FakeUnitOfWork``'s outbox (every transaction has
    finished: the horizon is past the last row)."""

    def __init__(self, store: FakeUnitOfWork, org: str) -> None:
        self.store = store
        self.org = org

    def changes(
        self, since: FeedCursor | None, limit: int, *, viewer: Viewer | None = None
    ) -> tuple[list[FeedRow], FeedCursor]:
        org = self.org
        horizon = FeedCursor(len(self.store.outbox) + 1, 0)
        if since is None:
            return [], horizon

        def shown(doc_id: str) -> bool:
            if viewer is None or viewer.admin:
                return True
            doc = self.store.docs.get((org, doc_id))
            return doc is not None and viewer_reads(viewer, doc)

        rows = [
            FeedRow(r.seq, r.seq, r.doc_id, r.version, r.op, r.created_at)
            for r in self.store.outbox
            if r.org == org and FeedCursor(r.seq, r.seq) > since and shown(r.doc_id)
        ][:limit]
        last = FeedCursor(rows[-1].txid, rows[-1].seq) if rows else since
        return rows, max(last, horizon) if len(rows) < limit else last


# --------------------------------------------------------------------- content
class FakeBlobStore:
    """Objects by key, each PUT a new version."""

    def __init__(self) -> None:
        self.objects: dict[str, tuple[bytes, str]] = {}  # key -> (bytes, version id)
        self.deleted: list[tuple[str, str | None]] = []
        self.reachable = True

    def put(self, key: str, data: bytes) -> str:
        """What a client does with a presigned PUT URL."""
        version = hashlib.sha256(data + key.encode()).hexdigest()[:8] + str(len(self.objects))
        self.objects[key] = (data, version)
        return version

    def presign_put(
        self, key: str, *, content_type: str, sha256_b64: str | None, size: int | None,
        expires_s: int,
    ) -> tuple[str, dict[str, str]]:  # fmt: skip
        headers = {"Content-Type": content_type}
        if sha256_b64:
            headers["x-amz-checksum-sha256"] = sha256_b64
        if size is not None:
            headers["Content-Length"] = str(size)
        return f"https://blobs.test/{key}?put&expires={expires_s}", headers

    def presign_get(
        self, key: str, *, version_id: str | None, content_type: str, disposition: str,
        expires_s: int,
    ) -> str:  # fmt: skip
        return f"https://blobs.test/{key}?get&version={version_id}&expires={expires_s}"

    def head(self, key: str, *, version_id: str | None = None) -> ObjectInfo | None:
        found = self.objects.get(key)
        if found is None or (version_id is not None and found[1] != version_id):
            return None
        return ObjectInfo(len(found[0]), "etag", found[1], None)

    def chunks(self, key: str, *, version_id: str | None, chunk_bytes: int) -> Iterator[bytes]:
        data = self.objects.get(key, (b"", ""))[0]
        for start in range(0, len(data), chunk_bytes):
            yield data[start : start + chunk_bytes]

    def delete(self, key: str, *, version_id: str | None = None) -> None:
        self.deleted.append((key, version_id))
        self.objects.pop(key, None)

    def ping(self) -> None:
        if not self.reachable:
            raise DependencyUnavailable("The object store is unavailable.")


# ----------------------------------------------------------------- idempotency
class FakeIdempotencyRecords:
    """Records per (org, key); ``orgs`` shows which org each was stored under."""

    def __init__(self) -> None:
        self.records: dict[tuple[str, str], IdempotencyRecord] = {}

    def get(self, org: str, key: str) -> IdempotencyRecord | None:
        return self.records.get((org, key))

    def claim(self, org: str, record: IdempotencyRecord, *, now_s: int, now_ms: int) -> bool:
        held = self.records.get((org, record.key))
        abandoned = (
            held is not None
            and held.status == "INPROGRESS"
            and held.in_progress_expiry is not None
            and held.in_progress_expiry < now_ms
        )
        if held is None or held.expiry < now_s or abandoned:
            self.records[(org, record.key)] = replace(record, data=None)
            return True
        return False

    def update(self, org: str, record: IdempotencyRecord) -> None:
        held = self.records[(org, record.key)]
        self.records[(org, record.key)] = replace(
            held, status=record.status, data=record.data, expiry=record.expiry
        )

    def delete(self, org: str, key: str) -> None:
        self.records.pop((org, key), None)


class FakeRedis:
    """The three commands Powertools' Redis persistence layer sends."""

    def __init__(self) -> None:
        self.values: dict[str, Any] = {}
        self.reachable = True

    def _check(self) -> None:
        if not self.reachable:
            raise ConnectionError("redis is down")

    def get(self, name: str) -> Any:
        self._check()
        return self.values.get(name)

    def set(self, name: str, value: Any, ex: int | None = None, nx: bool = False) -> bool | None:
        self._check()
        if nx and name in self.values:
            return None
        self.values[name] = value
        return True

    def delete(self, name: str) -> int:
        self._check()
        return 1 if self.values.pop(name, None) is not None else 0


def stale(doc: Document, **changes: Any) -> Document:
    return replace(doc, **changes)


def at(seconds: float = 0.0) -> datetime:
    """A fixed instant (plus ``seconds``), for documents built by hand."""
    return datetime(2026, 11, 1, tzinfo=UTC) + timedelta(seconds=seconds)


class FakeStaleUploads:
    """``stale`` is what the next call returns."""

    def __init__(self) -> None:
        self.stale: list[StaleUpload] = []

    def __call__(self, cutoff: datetime, limit: int) -> list[StaleUpload]:
        return self.stale[:limit]


def coherence(uow: FakeUnitOfWork, cache: FakeCache | None = None) -> Any:
    """The cache coherence of a fake unit of work and cache (and its repair queue)."""
    from chalicelib.service_layer.cache_coherence import CacheCoherence

    return CacheCoherence(cache or FakeCache(), uow, FakeCacheRepairQueue(uow))


class FakeFlags:
    """The ``FeatureFlags`` port: each flag its registry default unless ``set``, for
    everyone or for one org (or one user of an org)."""

    def __init__(self, **values: bool) -> None:
        self.values: dict[tuple[str, str | None, str | None], bool] = {
            (name, None, None): on for name, on in values.items()
        }
        self.asked: list[tuple[str, str, str | None]] = []

    def set(self, name: str, on: bool, *, org: str | None = None, user: str | None = None) -> None:
        self.values[(name, org, user)] = on

    def enabled(self, name: str, *, org: str, user: str | None = None) -> bool:
        from chalicelib.domain.flags import default_of

        self.asked.append((name, org, user))
        for key in ((name, org, user), (name, org, None), (name, None, None)):
            if key in self.values:
                return self.values[key]
        return default_of(name)
