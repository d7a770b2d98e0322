"""Views of the caller's share-notification settings (docs/compliance.md, "Share
notifications")."""

from __future__ import annotations

from chalice.app import Response

from chalicelib.api.endpoint import NO_STORE, Call
from chalicelib.api.http import json_response


def my_settings(call: Call) -> Response:
    """The caller's address (in clear, to its owner only) and ``shares`` switch."""
    settings = call.services.notification_settings.mine(call.who)
    return json_response(settings, headers=dict(NO_STORE))


def put_my_settings(call: Call) -> Response:
    """Change the address and/or ``shares``; the settings afterwards."""
    settings = call.services.notification_settings.change(call.who, call.json())
    return json_response(settings, headers=dict(NO_STORE))
