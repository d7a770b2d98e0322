"""Consent records: what a user agreed to, per purpose (docs/compliance.md).

The purposes are configuration (``DOCS_CONSENT_PURPOSES``); a purpose never
recorded for a user is not granted (consent is given, never assumed).  Each
change is a new ``ConsentRecord`` of an append-only history; a purpose's
current state is its newest record.  Pure: no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from chalicelib.domain.errors import ValidationFailed
from chalicelib.domain.timestamps import iso_z


@dataclass(frozen=True)
class ConsentState:
    """A purpose's current state: its newest record, or nothing recorded yet."""

    purpose: str
    granted: bool
    at: datetime | None = None
    policy_version: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "granted": self.granted,
            "at": iso_z(self.at) if self.at else None,
            "policy_version": self.policy_version,
        }


@dataclass(frozen=True)
class ConsentChange:
    """What one ``PUT /me/consents`` records: per purpose, granted or withdrawn."""

    choices: dict[str, bool]
    policy_version: str


def current_state(purposes: tuple[str, ...], recorded: list[ConsentState]) -> dict[str, Any]:
    """The response body ``{"consents": {purpose: state}}``: every configured purpose,
    recorded or not, in their configured order (records of purposes no longer
    configured are history, not state)."""
    newest = {state.purpose: state for state in recorded}
    states = {p: newest.get(p, ConsentState(p, granted=False)) for p in purposes}
    return {"consents": {p: s.to_json() for p, s in states.items()}}


def parse_consents(body: Any, purposes: tuple[str, ...], policy_version: str) -> ConsentChange:
    """The body ``{"consents": {purpose: bool, ...}, "policy_version"?: str}``; a 422
    listing every problem otherwise.  ``policy_version``, when sent (not null), must be the
    policy in force: a client that showed its user an older text is refused."""
    shape = 'The body must be {"consents": {"<purpose>": true | false, ...}}.'
    if not isinstance(body, dict) or not isinstance(body.get("consents"), dict):
        raise ValidationFailed(
            shape,
            errors=[{"loc": ["body", "consents"], "msg": "expected an object of purposes",
                     "type": "value_error"}],
        )  # fmt: skip
    errors: list[dict[str, Any]] = [
        {"loc": ["body", key], "msg": "unknown field", "type": "value_error"}
        for key in body
        if key not in ("consents", "policy_version")
    ]
    choices: dict[str, bool] = body["consents"]
    for purpose, granted in choices.items():
        if purpose not in purposes:
            errors.append({"loc": ["body", "consents", purpose],
                           "msg": f"unknown purpose (known: {', '.join(purposes) or 'none'})",
                           "type": "value_error"})  # fmt: skip
        elif not isinstance(granted, bool):
            errors.append({"loc": ["body", "consents", purpose], "msg": "expected true or false",
                           "type": "type_error"})  # fmt: skip
    if not choices:
        errors.append({"loc": ["body", "consents"], "msg": "name at least one purpose",
                       "type": "value_error"})  # fmt: skip
    sent = body.get("policy_version")
    if sent is not None and sent != policy_version:
        errors.append({"loc": ["body", "policy_version"],
                       "msg": f"not the policy in force ({policy_version})",
                       "type": "value_error"})  # fmt: skip
    if errors:
        raise ValidationFailed(shape if len(errors) > 1 else errors[0]["msg"], errors=errors)
    return ConsentChange(dict(choices), policy_version)
