"""Access reviews: who may read and write what in one org, and the attestation of a review.

Effective access is the org role, the document's visibility and its grants
(domain/access.py).  Org roles live only in tokens: the service keeps no
membership list, so a review cannot name every member of the org.  It names
what the service stores and states the rest as a role rule:

* per document: its visibility and owner, its grants, and the *role rule*:
  ``reader`` and ``writer`` for a document open to the org (every member whose
  token holds that role reads, or writes), ``admin`` for a private one (only
  the org's admins reach it besides the users listed);
* per user: every user the service knows of in the org (document owners,
  grantees, and the actors of the audit trail while they are not erased), with
  each document they reach by name (owner or grant); a user reached only by
  the role rule has one row without a document.

A named user still needs the role in their token: a ``writer`` grant to
someone whose token says ``reader`` only reads (the table below the rule is a
ceiling, never a widening).

**Stale grants.**  The audit trail records every change, not reads (a read
costs no write, by design).  A grant is *stale* when it is older than the
staleness window and its grantee has no audited action on the document within
that window: the last activity is the grantee's latest audit row on the
document, and a grantee who only reads shows none.  That is the evidence
there is; the review shows ``last_activity`` so the reviewer can judge.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from chalicelib.domain.errors import ValidationFailed
from chalicelib.domain.timestamps import iso_z
from chalicelib.domain.user_id import validate_user_id

VIEWS = ("documents", "users")
MAX_NOTES = 4000
MAX_REVOKED = 1000
# the least org role that reads / writes a document of each visibility by role alone
ROLE_RULE = {"org": ("reader", "writer"), "private": ("admin", "admin")}


@dataclass(frozen=True)
class GrantAccess:
    """One grant with the grantee's last audited action on its document."""

    user: str
    role: str
    granted_by: str
    granted_at: datetime
    last_activity: datetime | None

    def stale(self, now: datetime, window: timedelta) -> bool:
        """Older than ``window`` with no audited action of the grantee within it."""
        since = now - window
        return self.granted_at < since and (
            self.last_activity is None or self.last_activity < since
        )

    def to_json(self, now: datetime, window: timedelta) -> dict[str, Any]:
        return {
            "user": self.user,
            "role": self.role,
            "granted_by": self.granted_by,
            "granted_at": iso_z(self.granted_at),
            "last_activity": iso_z(self.last_activity) if self.last_activity else None,
            "stale": self.stale(now, window),
        }


@dataclass(frozen=True)
class DocumentAccess:
    """One live document's effective readers and writers."""

    document: str
    visibility: str
    owner: str
    grants: tuple[GrantAccess, ...]

    def to_json(self, now: datetime, window: timedelta) -> dict[str, Any]:
        read_role, write_role = ROLE_RULE[self.visibility]
        writers = [self.owner, *(g.user for g in self.grants if g.role == "writer")]
        return {
            "document": self.document,
            "visibility": self.visibility,
            "owner": self.owner,
            "readers": {"role": read_role, "users": [self.owner, *(g.user for g in self.grants)]},
            "writers": {"role": write_role, "users": writers},
            "grants": [g.to_json(now, window) for g in self.grants],
        }


@dataclass(frozen=True)
class UserAccess:
    """One user's access to one document by name (owner or grant), or, with no
    document, a known user who reaches documents by the role rule alone."""

    user: str
    document: str  # '' for the role rule alone
    visibility: str | None
    via: str  # owner | grant | role
    role: str | None  # the grant's role
    granted_at: datetime | None
    last_activity: datetime | None

    @property
    def access(self) -> str | None:
        if self.via == "owner" or self.role == "writer":
            return "write"
        return "read" if self.via == "grant" else None

    def to_json(self, now: datetime, window: timedelta) -> dict[str, Any]:
        grant = None
        if self.via == "grant" and self.role and self.granted_at:
            grant = GrantAccess(self.user, self.role, "", self.granted_at, self.last_activity)
        return {
            "user": self.user,
            "document": self.document or None,
            "visibility": self.visibility,
            "access": self.access,
            "via": self.via,
            "role": self.role,
            "granted_at": iso_z(self.granted_at) if self.granted_at else None,
            "last_activity": iso_z(self.last_activity) if self.last_activity else None,
            "stale": grant.stale(now, window) if grant else False,
        }


@dataclass(frozen=True)
class Attestation:
    """A completed review as recorded: who attested it, when, and what it revoked."""

    id: str
    reviewed_by: str
    reviewed_at: datetime
    notes: str
    revoked: tuple[tuple[str, str], ...]  # (document, user)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "reviewed_by": self.reviewed_by,
            "reviewed_at": iso_z(self.reviewed_at),
            "notes": self.notes,
            "revoked": [{"document": d, "user": u} for d, u in self.revoked],
        }


def _invalid(loc: list[str | int], msg: str) -> ValidationFailed:
    return ValidationFailed(
        'The body must be {"notes": "...", "revoked": [{"document": "...", "user": "..."}]} '
        "(revoked may be empty, null or left out).",
        errors=[{"loc": loc, "msg": msg, "type": "value_error"}],
    )


def parse_view(raw: str | None) -> str:
    if raw is None or raw == "":
        return "documents"
    if raw not in VIEWS:
        raise ValidationFailed(
            "view must be 'documents' or 'users'.",
            errors=[{"loc": ["query", "view"], "msg": "must be documents|users", "type": "enum"}],
        )
    return raw


def parse_attestation(data: Any) -> tuple[str, tuple[tuple[str, str], ...]]:
    """The notes and the revoked (document, user) pairs of an attestation body."""
    if not isinstance(data, dict) or "notes" not in data or set(data) - {"notes", "revoked"}:
        raise _invalid(["body"], "expected {notes, revoked?}")
    notes = data["notes"]
    if not isinstance(notes, str) or len(notes) > MAX_NOTES:
        raise _invalid(["notes"], f"must be a string of at most {MAX_NOTES} characters")
    revoked = data.get("revoked")
    if revoked is None:  # left out, or null: nothing was revoked
        revoked = []
    if not isinstance(revoked, list) or len(revoked) > MAX_REVOKED:
        raise _invalid(["revoked"], f"must be a list of at most {MAX_REVOKED} entries")
    pairs: list[tuple[str, str]] = []
    for i, entry in enumerate(revoked):
        if not isinstance(entry, dict) or set(entry) != {"document", "user"}:
            raise _invalid(["revoked", i], "expected {document, user}")
        doc, user = entry["document"], entry["user"]
        if not isinstance(doc, str) or not doc or len(doc) > 256:
            raise _invalid(["revoked", i, "document"], "must be a document id")
        pairs.append((doc, validate_user_id(user, ["revoked", i, "user"])))
    return notes, tuple(pairs)
