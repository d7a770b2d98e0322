"""What every use case on one document shares: how it opens, and how a write ends.

Opening: the caller's role first, then the id, then (after whatever the use
case validates in between) one transaction of the caller's org in which the
document is read together with BEGIN (one round trip).  Ending, after COMMIT
and before the answer: the search sync is woken, then the cache gets the new
version (service_layer/cache_coherence.py).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import NoReturn

from chalicelib.domain.access import acl_of, can_read, can_write
from chalicelib.domain.errors import Conflict, Forbidden, NotFound, PreconditionFailed
from chalicelib.domain.model import Document, validate_id
from chalicelib.domain.ports.outbox import OutboxNudge
from chalicelib.domain.ports.transaction import Transaction, UnitOfWork
from chalicelib.domain.principal import Principal
from chalicelib.service_layer.cache_coherence import CacheCoherence


def live(doc: Document | None, doc_id: str) -> Document:
    """The document, unless it never existed (in this org) or is deleted: 404 alike."""
    if doc is None or doc.deleted:
        raise NotFound(f"Document {doc_id!r} not found.")
    return doc


def require_readable(who: Principal, doc: Document, doc_id: str) -> Document:
    """The document, if ``who`` may read it; 404 otherwise (its existence is not revealed)."""
    if not can_read(who, acl_of(doc)):
        raise NotFound(f"Document {doc_id!r} not found.")
    return doc


def refuse_hidden(doc_id: str, *, if_match: str | None, if_none_match: str | None) -> NoReturn:
    """A PUT on an id taken by a document the caller may not read (docs/security.md,
    "Hidden documents and chosen ids").

    With ``If-Match`` the answer is exactly a never-used id's (412 "does not
    exist", no ETag).  Without it a never-used id would be created, which this
    one cannot be: the answer says the id is taken (412 under ``If-None-Match:
    *``, else 409), and no more (no ETag, version, owner or deletion state).
    An id is a name the client chose, unique in its org, so that it is taken is
    not a secret; what a private document holds is."""
    if if_match is not None:
        raise PreconditionFailed(f"Document {doc_id!r} does not exist.")
    if if_none_match is not None and if_none_match.strip() == "*":
        raise PreconditionFailed(f"Document {doc_id!r} already exists.")
    raise Conflict(
        f"The id {doc_id!r} is taken by a document you cannot read; choose another id "
        "(or ask its owner for a grant)."
    )


def writable(who: Principal, doc: Document) -> Document:
    """The document, if ``who`` (who may read it) may also write it; 403 otherwise."""
    if not can_write(who, acl_of(doc)):
        raise Forbidden(
            f"Document {doc.id!r} is private: writing it needs its owner, an admin "
            "or a 'writer' grant (and the org role 'writer')."
        )
    return doc


class DocumentUseCases:
    def __init__(
        self,
        uow: UnitOfWork,
        coherence: CacheCoherence,
        *,
        nudge: OutboxNudge | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.uow = uow
        self.coherence = coherence
        self.cache = coherence.cache
        self.nudge = nudge  # wakes the outbox consumers after a commit
        self._clock = clock or (lambda: datetime.now(UTC))  # stamps versions

    @staticmethod
    def _allow(who: Principal, role: str, doc_id: str) -> None:
        """The caller holds ``role``, and ``doc_id`` is an id (403, then 422)."""
        who.require(role)
        validate_id(doc_id)

    @contextmanager
    def _open(self, org: str, doc_id: str) -> Iterator[tuple[Transaction, Document | None]]:
        """A transaction of ``org`` and the document, read with BEGIN (deleted or not)."""
        with self.uow.transaction(org, prefetch=doc_id) as tx:
            yield tx, tx.documents.get(doc_id)

    @contextmanager
    def _open_live(self, org: str, doc_id: str) -> Iterator[tuple[Transaction, Document]]:
        """``_open``, for a document that must exist and not be deleted."""
        with self._open(org, doc_id) as (tx, doc):
            yield tx, live(doc, doc_id)

    @contextmanager
    def _open_readable(self, who: Principal, doc_id: str) -> Iterator[tuple[Transaction, Document]]:
        """``_open_live``, for a document ``who`` may read (else 404, as if absent:
        domain/access.py)."""
        with self._open_live(who.org, doc_id) as (tx, doc):
            yield tx, require_readable(who, doc, doc_id)

    @contextmanager
    def _open_writable(self, who: Principal, doc_id: str) -> Iterator[tuple[Transaction, Document]]:
        """``_open_live``, for a document ``who`` may write: 404 when it may not even
        read it, 403 when it may read but not write it."""
        with self._open_readable(who, doc_id) as (tx, doc):
            writable(who, doc)
            yield tx, doc

    def recheck(self, who: Principal, doc_id: str, *, write: bool) -> None:
        """What a fresh request on ``doc_id`` checks before it does anything: 404 when
        the document is gone or ``who`` may not read it, 403 when ``write`` and ``who``
        may read it but not write it.  A replayed answer (Idempotency-Key) is handed
        out only after this (api/endpoint.py)."""
        self._allow(who, "writer" if write else "reader", doc_id)
        with self._open_readable(who, doc_id) as (_, doc):
            if write:
                writable(who, doc)

    def _publish(self, doc: Document, *, fenced: bool = True) -> None:
        """After commit, before answering: wake the search sync, then publish to the cache."""
        if self.nudge is not None:
            self.nudge(doc)
        self.coherence.publish(doc, fenced=fenced)
