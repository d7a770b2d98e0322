"""Consent use cases (docs/compliance.md, "Consent records").

``GET /me/consents`` and ``PUT /me/consents`` read and change the caller's
consents; ``GET /users/{user}/consents`` lets an admin read a user's.  Every
change appends to the history and is audited in the same transaction; the
current state is read from PostgreSQL in one statement (no cache: a withdrawn
consent must hold at once, on every instance).

``granted(org, user, purpose)`` is THE check for anything the service does
that needs a user's consent (a notification, say): call it before acting, and
do nothing without consent.  An unknown purpose is a programming error, not a
refusal.
"""

from __future__ import annotations

from typing import Any

from chalicelib.domain.consents import current_state, parse_consents
from chalicelib.domain.ports.consents import ConsentRecords
from chalicelib.domain.principal import Principal
from chalicelib.domain.user_id import validate_user_id
from chalicelib.service_layer.retry import retry_transient
from chalicelib.settings_groups import ConsentSettings

# the audit action of a change of consent
CONSENT_ACTION = "consent-changed"


class ConsentService:
    def __init__(self, records: ConsentRecords, settings: ConsentSettings) -> None:
        self.records = records
        self.purposes = settings.purposes
        self.policy_version = settings.policy_version

    def mine(self, who: Principal) -> dict[str, Any]:
        """GET /me/consents: the caller's consent per configured purpose."""
        who.require("reader")
        return current_state(self.purposes, self.records.current(who.org, who.sub))

    @retry_transient()
    def change(self, who: Principal, body: Any) -> dict[str, Any]:
        """PUT /me/consents: record the purposes named in ``body``; the state afterwards."""
        who.require("reader")
        consents = parse_consents(body, self.purposes, self.policy_version)
        states = self.records.record(who.org, who.sub, consents, who.change(CONSENT_ACTION))
        return current_state(self.purposes, states)

    def of_user(self, who: Principal, user: str) -> dict[str, Any]:
        """GET /users/{user}/consents (admins of the user's org)."""
        who.require("admin")
        validate_user_id(user, ["path", "user"])
        return {"user": user, **current_state(self.purposes, self.records.current(who.org, user))}

    def granted(self, org: str, user: str, purpose: str) -> bool:
        """Whether ``user`` of ``org`` consents to ``purpose`` now (never recorded: no)."""
        if purpose not in self.purposes:
            raise ValueError(f"{purpose!r} is not a configured consent purpose")
        return any(s.purpose == purpose and s.granted for s in self.records.current(org, user))
