"""Who is calling: the verified token's subject, org (tenant) and roles.

A machine client (OAuth2 client credentials, docs/security.md "Machine clients")
is a principal too: its ``sub`` is its client id, its org is the one it was
registered for, and its roles come from its token's scopes (``roles_for_scopes``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from chalicelib.domain.errors import Forbidden
from chalicelib.domain.model import Change

ROLE_RANK = {"reader": 1, "writer": 2, "admin": 3}
# a resource server's scope names (``<resource server>/<name>``) and the role each grants
SCOPE_ROLES = {"read": "reader", "write": "writer", "admin": "admin"}


def roles_for_scopes(scopes: Iterable[str], resource_server: str) -> frozenset[str]:
    """The role a machine client's scopes grant: the highest of them (roles are
    cumulative), or none when no scope is one of ``resource_server``'s."""
    prefix = resource_server + "/"
    roles = [
        SCOPE_ROLES[s[len(prefix) :]]
        for s in scopes
        if s.startswith(prefix) and s[len(prefix) :] in SCOPE_ROLES
    ]
    if not roles:
        return frozenset()
    return frozenset({max(roles, key=ROLE_RANK.__getitem__)})


@dataclass(frozen=True)
class Principal:
    sub: str
    org: str
    roles: frozenset[str] = field(default_factory=frozenset)
    request_id: str | None = None  # the server's own id of this request (audited)
    client_request_id: str | None = None  # the client's X-Request-Id (correlation only)
    machine: bool = False  # an OAuth2 client-credentials client: sub is its client id

    def change(self, action: str) -> Change:
        """The audit record of a change this caller makes."""
        return Change(action, self.sub, self.request_id, self.client_request_id)

    @property
    def rank(self) -> int:
        return max((ROLE_RANK.get(r, 0) for r in self.roles), default=0)

    @property
    def top_role(self) -> str:
        """The highest role held ('reader' when none): what rate limits key on."""
        return max(self.roles, key=lambda r: ROLE_RANK.get(r, 0), default="reader")

    def require(self, role: str) -> None:
        """Roles are cumulative: writer can read, admin can write."""
        if self.rank < ROLE_RANK[role]:
            raise Forbidden(f"This needs the '{role}' role.")
