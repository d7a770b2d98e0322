"""Document permissions as use cases: grants, visibility, and ``readable_ids``.

The rules are domain/access.py; this is where they change.  A grant change or
a visibility change is a change of the document like any other write, in one
transaction: the grant row, then the document row at ``version + 1`` with its
version, outbox and audit rows (action ``grant.put``, ``grant.delete`` or
``visibility.change``, with the user, role, before/after in the audit row's
details).  Making it a new version is what carries the new ACL everywhere a
version travels, with no mechanism of its own:

* the cache: the write is fenced before COMMIT and the new entry (with its
  ACL) published after it, so no reader is served the old ACL once the change
  was acknowledged (service_layer/cache_coherence.py);
* the search index: the outbox row makes the sync write the document with its
  new ACL, external-versioned like any change (a same-version write would be
  refused as stale);
* the feed and the real-time fan-out see it as a change.

``readable_ids`` is the query the real-time fan-out (and anything else holding a
batch of ids) asks: which of these documents may this caller read, in one
database round trip.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from typing import Any

from chalicelib.domain.access import (
    Grant,
    acl_of,
    can_manage,
    parse_grant,
    parse_visibility,
    validate_grantee,
    viewer_of,
)
from chalicelib.domain.errors import Conflict, Forbidden, PreconditionFailed, ValidationFailed
from chalicelib.domain.model import Change, Document, if_match_satisfied
from chalicelib.domain.ports.transaction import Transaction
from chalicelib.domain.principal import ROLE_RANK, Principal
from chalicelib.domain.viewer import Viewer
from chalicelib.service_layer.retry import retry_transient
from chalicelib.service_layer.use_case import DocumentUseCases

# a grant change that lost a race with another write of the same document is
# read again and redone (the caller sent no If-Match to fail on) this many times
_RACE_RETRIES = 3

Mutation = Callable[[Transaction, Document], tuple[Document, Change] | None]


class _LostRace(Exception):
    """The document moved on between our read and our conditional update."""


class AccessService(DocumentUseCases):
    """``/documents/{id}/grants``, ``/documents/{id}/visibility`` and ``readable_ids``."""

    # ------------------------------------------------------------------ reads
    @retry_transient()
    def list_grants(self, who: Principal, doc_id: str) -> tuple[Document, list[Grant]]:
        """The document (owner, visibility, version) and its grants."""
        self._allow(who, "reader", doc_id)
        with self._open_managed(who, doc_id) as (tx, doc):
            grants = tx.grants.list(doc_id)
        return doc, grants

    def readable_ids(
        self, org: str, user: str, roles: Iterable[str], doc_ids: Iterable[str]
    ) -> set[str]:
        """Which of ``doc_ids`` (documents of ``org``, soft-deleted ones included: a
        subscriber learns of a deletion) ``user`` with the org ``roles`` may read: one
        query (the real-time fan-out's ``ReadFilter``)."""
        ranks = [ROLE_RANK.get(r, 0) for r in roles]
        rank = max(ranks, default=0)
        if rank < ROLE_RANK["reader"]:
            return set()
        viewer = Viewer(user, rank >= ROLE_RANK["admin"])
        return self.uow.readable_ids(org, viewer, doc_ids, deleted=True)

    def readable_ids_for(self, who: Principal, doc_ids: Iterable[str]) -> set[str]:
        """``readable_ids`` for a verified caller."""
        if who.rank < ROLE_RANK["reader"]:
            return set()
        return self.uow.readable_ids(who.org, viewer_of(who), doc_ids)

    # ----------------------------------------------------------------- writes
    def put_grant(self, who: Principal, doc_id: str, user: str, data: Any) -> Document:
        """Add or change ``user``'s grant (owner or admin)."""
        self._allow(who, "writer", doc_id)
        validate_grantee(user)
        role = parse_grant(data)

        def mutate(tx: Transaction, current: Document) -> tuple[Document, Change] | None:
            previous = current.grants.get(user)
            if previous == role:
                return None
            if user == current.owner:
                raise ValidationFailed(
                    "The owner already has every right on its document; a grant would change "
                    "nothing.",
                    errors=[
                        {"loc": ["path", "user"], "msg": "is the owner", "type": "value_error"}
                    ],
                )
            tx.grants.put(doc_id, user, role, who.sub)
            details = {"grantee": user, "role": role, "previous_role": previous}
            doc = replace(current, grants={**current.grants, user: role})
            return doc, self._change(who, "grant.put", details)

        return self._acl_write(who, doc_id, mutate)

    def delete_grant(self, who: Principal, doc_id: str, user: str) -> Document:
        """Remove ``user``'s grant (owner or admin); removing none changes nothing."""
        self._allow(who, "writer", doc_id)
        validate_grantee(user)

        def mutate(tx: Transaction, current: Document) -> tuple[Document, Change] | None:
            previous = current.grants.get(user)
            if previous is None or not tx.grants.delete(doc_id, user):
                return None
            grants = {k: v for k, v in current.grants.items() if k != user}
            details = {"grantee": user, "previous_role": previous}
            return replace(current, grants=grants), self._change(who, "grant.delete", details)

        return self._acl_write(who, doc_id, mutate)

    def set_visibility(
        self, who: Principal, doc_id: str, data: Any, *, if_match: str | None
    ) -> Document:
        """``{"visibility": "org" | "private"}`` (owner or admin); ``If-Match`` optional."""
        self._allow(who, "writer", doc_id)
        if not isinstance(data, dict) or set(data) != {"visibility"}:
            raise ValidationFailed(
                'The body must be {"visibility": "org" | "private"}.',
                errors=[{"loc": ["body"], "msg": "expected {visibility}", "type": "value_error"}],
            )
        visibility = parse_visibility(data["visibility"])

        def mutate(tx: Transaction, current: Document) -> tuple[Document, Change] | None:
            if if_match is not None and not if_match_satisfied(if_match, current.etag):
                raise PreconditionFailed(
                    "The document has changed since that ETag.", headers={"ETag": current.etag}
                )
            if current.visibility == visibility:
                return None
            details = {"from": current.visibility, "to": visibility}
            doc = replace(current, visibility=visibility)
            return doc, self._change(who, "visibility.change", details)

        return self._acl_write(who, doc_id, mutate)

    # ---------------------------------------------------------------- helpers
    @staticmethod
    def _change(who: Principal, action: str, details: dict[str, Any]) -> Change:
        return replace(who.change(action), details=details)

    @contextmanager
    def _open_managed(self, who: Principal, doc_id: str) -> Iterator[tuple[Transaction, Document]]:
        """A live document ``who`` may read (else 404) and manage (else 403)."""
        with self._open_readable(who, doc_id) as (tx, doc):
            if not can_manage(who, acl_of(doc)):
                raise Forbidden(
                    "Only the document's owner or an admin manages its grants and visibility."
                )
            yield tx, doc

    @retry_transient()
    def _acl_write(self, who: Principal, doc_id: str, mutate: Mutation) -> Document:
        """Apply ``mutate`` as a new version (see the module docstring); redone on a
        lost race, 409 after ``_RACE_RETRIES``.  A mutation that changes nothing
        writes nothing and returns the document as it is."""
        for _ in range(_RACE_RETRIES):
            try:
                with self._open_managed(who, doc_id) as (tx, read):
                    # point reads carry the grants of private documents only: read them
                    # here, where an open document's grants matter too
                    grants = {g.user: g.role for g in tx.grants.list(doc_id)}
                    current = replace(read, grants=grants)
                    planned = mutate(tx, current)
                    if planned is None:
                        return current
                    doc, change = planned
                    doc = replace(doc, version=current.version + 1, updated_at=self._clock())
                    fenced = self.coherence.fence(tx, doc)
                    # not ``last``: a lost race must roll the grant row back too
                    if not tx.documents.update(doc, change, expected_version=current.version):
                        raise _LostRace
            except _LostRace:
                continue
            self._publish(doc, fenced=fenced)
            return doc
        raise Conflict(f"Document {doc_id!r} is being changed concurrently; retry.")
