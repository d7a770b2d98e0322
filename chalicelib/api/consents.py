"""Views of consent records (docs/compliance.md, "Consent records"): the caller's
consents and an admin's read of a user's."""

from __future__ import annotations

from chalice.app import Response

from chalicelib.api.endpoint import NO_STORE, Call
from chalicelib.api.http import json_response


def my_consents(call: Call) -> Response:
    """The caller's consent per configured purpose."""
    return json_response(call.services.consents.mine(call.who), headers=dict(NO_STORE))


def put_my_consents(call: Call) -> Response:
    """Grant or withdraw the purposes the body names; the state afterwards."""
    state = call.services.consents.change(call.who, call.json())
    return json_response(state, headers=dict(NO_STORE))


def user_consents(call: Call, user: str) -> Response:
    """A user's consent per purpose, in the caller's org (admins only)."""
    call.who.require("admin")
    return json_response(call.services.consents.of_user(call.who, user), headers=dict(NO_STORE))
