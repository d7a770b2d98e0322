"""Who is calling: the verified token's subject, org (tenant) and roles."""

from __future__ import annotations

from dataclasses import dataclass, field

from chalicelib.domain.errors import Forbidden
from chalicelib.domain.model import Change

ROLE_RANK = {"reader": 1, "writer": 2, "admin": 3}


@dataclass(frozen=True)
class Principal:
    sub: str
    org: str
    roles: frozenset[str] = field(default_factory=frozenset)
    request_id: str | None = None  # the server's own id of this request (audited)
    client_request_id: str | None = None  # the client's X-Request-Id (correlation only)

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
