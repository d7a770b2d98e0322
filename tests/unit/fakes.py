"""In-memory fakes of the ports, for unit tests of the service layer only."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from typing import Any

from chalicelib.domain.model import Document
from chalicelib.domain.ports import CachedDocument, Change, ListCursor, VersionRecord


class FakeRepo:
    def __init__(self, store: FakeUnitOfWork, org: str) -> None:
        self.store = store
        self.org = org

    def get(self, doc_id: str) -> Document | None:
        return self.store.docs.get((self.org, doc_id))

    def insert(self, doc: Document, change: Change, *, last: bool = False) -> bool:
        if (self.org, doc.id) in self.store.docs:
            return False
        self.store.pending[(self.org, doc.id)] = doc
        self._record(doc, change.action, change.actor)
        return True

    def update(
        self, doc: Document, change: Change, *, expected_version: int, last: bool = False
    ) -> bool:
        current = self.store.docs.get((self.org, doc.id))
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
                ),
            )
        )
        self.store.pending_outbox.append((self.org, doc.id, doc.version, action))

    def list_documents(
        self, *, limit: int, after: ListCursor | None, tag: str | None
    ) -> list[Document]:
        docs = [d for (o, _), d in self.store.docs.items() if o == self.org and not d.deleted]
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

    def mark_cache_dirty(self, doc_id: str, version: int) -> None:
        self.store.pending_dirty.append((self.org, doc_id, version))

    def get_version(self, doc_id: str, version: int) -> VersionRecord | None:
        for o, i, v in self.store.versions:
            if (o, i, v.version) == (self.org, doc_id, version):
                return v
        return None


class FakeUnitOfWork:
    def __init__(self) -> None:
        self.docs: dict[tuple[str, str], Document] = {}
        self.versions: list[tuple[str, str, VersionRecord]] = []
        self.outbox: list[tuple[str, str, int, str]] = []
        self.pending: dict[tuple[str, str], Document] = {}
        self.pending_versions: list[tuple[str, str, VersionRecord]] = []
        self.pending_outbox: list[tuple[str, str, int, str]] = []
        self.dirty: list[tuple[str, str, int]] = []
        self.pending_dirty: list[tuple[str, str, int]] = []
        self.transactions = 0

    def read_document(self, org: str, doc_id: str) -> Document | None:
        self.transactions += 1
        return self.docs.get((org, doc_id))

    @contextmanager
    def transaction(self, org: str, *, prefetch: str | None = None) -> Iterator[FakeRepo]:
        self.pending, self.pending_versions, self.pending_outbox = {}, [], []
        self.pending_dirty = []
        try:
            yield FakeRepo(self, org)
        except BaseException:
            self.pending, self.pending_versions, self.pending_outbox = {}, [], []
            raise
        self.docs.update(self.pending)
        self.versions += self.pending_versions
        self.outbox += self.pending_outbox
        self.dirty += self.pending_dirty
        self.transactions += 1

    def ping(self) -> None:
        return None

    def dirty_documents(self, limit: int) -> list[tuple[str, str, int]]:
        return self.dirty[:limit]

    def clear_dirty(self, items: list[tuple[str, str, int]]) -> None:
        self.dirty = [d for d in self.dirty if d not in items]


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
        self.put_if_newer(org, doc_id, entry)
        return self.bump_lists(org)

    def bump_lists(self, org: str) -> bool:
        self.generation[org] = self.generation.get(org, 0) + 1
        return True

    def get_etag(self, org: str, doc_id: str) -> tuple[int, str] | None:
        entry = self.docs.get((org, doc_id))
        return (entry.version, entry.etag) if entry and entry.body else None

    def fence(self, org: str, doc_id: str, version: int) -> bool:
        if not self.reachable:
            return False
        self.fences.append((org, doc_id, version))
        self.docs.pop((org, doc_id), None)
        return True

    def status(self) -> str:
        return "ok"


def stale(doc: Document, **changes: Any) -> Document:
    return replace(doc, **changes)
