"""Document permissions: who may read, write and manage one document.

The org role (the token's ``roles``) is the ceiling; a document's ACL can only
narrow it, never widen it, and never across orgs (a grant lives in the
document's org, and only callers whose verified token names that org ever
reach the document):

* **read**: the caller holds at least ``reader`` and the document is open to
  the org (``visibility='org'``), or the caller is its owner, an admin, or a
  grantee (of either grant role);
* **write**: the caller holds at least ``writer`` and the document is open to
  the org, or the caller is its owner, an admin, or holds a ``writer`` grant
  (a ``writer`` grant to a caller whose token says ``reader`` still only reads);
* **manage** (grants, visibility): the owner or an admin, holding ``writer``
  at least (managing is a write of the document).

A document the caller may not read is answered exactly like one of another
org: 404, its existence is not revealed.  One it may read but not write is
a 403 for a write.

These functions are pure; the same rules are written once more in SQL for
the reads that filter many documents in the database (lists, the feed, the
real-time ``readable_ids`` query: adapters/postgres/access.py) and once as an
OpenSearch filter (domain/search.py), and the tests hold all three to the
same table of cases.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from chalicelib.domain.errors import ValidationFailed
from chalicelib.domain.model import Document
from chalicelib.domain.principal import ROLE_RANK, Principal
from chalicelib.domain.user_id import validate_user_id
from chalicelib.domain.viewer import Viewer

VISIBILITIES = ("org", "private")
GRANT_ROLES = ("reader", "writer")


@dataclass(frozen=True)
class Acl:
    """What decides access to one document: visibility, owner and grants."""

    visibility: str
    owner: str
    grants: Mapping[str, str] = field(default_factory=dict)  # grantee -> 'reader' | 'writer'

    @property
    def open_to_org(self) -> bool:
        return self.visibility != "private"

    def readers(self) -> list[str]:
        """Who may read it besides the role rule (owner and every grantee), sorted:
        what the search index holds to filter on."""
        return sorted({self.owner, *self.grants})

    def encode(self) -> str:
        """The ACL as a cache entry carries it: ``""`` for a document open to the
        org (nothing to check beyond the role), otherwise compact JSON
        ``[owner, [grantees...]]`` (grant roles do not matter for reads)."""
        if self.open_to_org:
            return ""
        return json.dumps([self.owner, sorted(self.grants)], separators=(",", ":"))

    @classmethod
    def decode(cls, raw: str) -> Acl:
        """The inverse of ``encode`` (grants come back as readers)."""
        if not raw:
            return cls("org", "")
        owner, grantees = json.loads(raw)
        return cls("private", str(owner), dict.fromkeys((str(g) for g in grantees), "reader"))


def is_admin(who: Principal) -> bool:
    return who.rank >= ROLE_RANK["admin"]


def can_read(who: Principal, acl: Acl) -> bool:
    if who.rank < ROLE_RANK["reader"]:
        return False
    if acl.open_to_org or is_admin(who) or who.sub == acl.owner:
        return True
    return who.sub in acl.grants


def can_write(who: Principal, acl: Acl) -> bool:
    if who.rank < ROLE_RANK["writer"]:
        return False
    if acl.open_to_org or is_admin(who) or who.sub == acl.owner:
        return True
    return acl.grants.get(who.sub) == "writer"


def can_manage(who: Principal, acl: Acl) -> bool:
    """Grants and visibility: the owner (a writer at least) or an admin."""
    return who.rank >= ROLE_RANK["writer"] and (is_admin(who) or who.sub == acl.owner)


# ------------------------------------------------------------------ input
def parse_visibility(value: Any, *, loc: str = "visibility") -> str:
    if value not in VISIBILITIES:
        raise ValidationFailed(
            "visibility must be 'org' (every reader of the org) or 'private' "
            "(its owner, admins and grantees).",
            errors=[{"loc": [loc], "msg": "must be 'org' or 'private'", "type": "enum"}],
        )
    return str(value)


def parse_grant(data: Any) -> str:
    """The role of a ``PUT /documents/{id}/grants/{user}`` body ``{"role": ...}``."""
    if not isinstance(data, dict) or set(data) != {"role"}:
        raise ValidationFailed(
            'The grant must be a JSON object {"role": "reader" | "writer"} and nothing else '
            "(a grant is always to a user of the document's own org).",
            errors=[{"loc": ["body"], "msg": "expected {role}", "type": "value_error"}],
        )
    role = data["role"]
    if role not in GRANT_ROLES:
        raise ValidationFailed(
            "role must be 'reader' or 'writer'.",
            errors=[{"loc": ["role"], "msg": "must be 'reader' or 'writer'", "type": "enum"}],
        )
    return str(role)


def validate_grantee(user: str) -> str:
    """A grantee: a user id under the one rule (domain/user_id.py), 422 otherwise."""
    return validate_user_id(user, ["path", "user"])


def acl_of(doc: Document) -> Acl:
    return Acl(doc.visibility, doc.owner, doc.grants)


def viewer_of(who: Principal) -> Viewer:
    """Whose reads a database or index query filters (lists, feed, search)."""
    return Viewer(who.sub, is_admin(who))


def split_visibility(data: Any) -> tuple[Any, str | None]:
    """A create/replace body without its optional ``visibility``, and that value
    (None when absent): the rest is the document's editable part."""
    if not isinstance(data, dict) or "visibility" not in data:
        return data, None
    rest = {k: v for k, v in data.items() if k != "visibility"}
    return rest, parse_visibility(data["visibility"])


@dataclass(frozen=True)
class Grant:
    user: str
    role: str  # reader | writer
    granted_by: str
    granted_at: datetime
