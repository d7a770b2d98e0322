"""The view of the audit trail (docs/compliance.md): the org's trail, for admins."""

from __future__ import annotations

from chalice.app import Response

from chalicelib.api.endpoint import NO_STORE, Call
from chalicelib.api.http import json_response
from chalicelib.domain.model import parse_limit


def audit_trail(call: Call) -> Response:
    """The org's audit rows, newest first; admins only (403 otherwise)."""
    params = call.query
    page = call.services.audit.page(
        call.who,
        document=params.get("document"),
        user=params.get("user"),
        since=params.get("since"),
        page_token=params.get("page_token"),
        limit=parse_limit(params.get("limit"), default=50, maximum=500),
    )
    return json_response(page, headers=dict(NO_STORE))
