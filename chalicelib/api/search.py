"""Routes of search and the changes feed: reads scoped to the caller's org, never cached."""

from __future__ import annotations

from chalice.app import Blueprint, Response

from chalicelib.api.endpoint import ANY, NO_STORE, Call, endpoint
from chalicelib.api.http import json_response
from chalicelib.domain.errors import BadRequest
from chalicelib.domain.model import parse_limit

bp = Blueprint(__name__)


@bp.route("/search", methods=["POST"], content_types=ANY)
@endpoint(bp)
def search(call: Call) -> Response:
    """Full-text search in the caller's org; never cached (the index moves on)."""
    result = call.services.search.search(call.who, call.json())
    return json_response(result, headers=dict(NO_STORE))


@bp.route("/changes", methods=["GET"], content_types=ANY)
@endpoint(bp)
def changes(call: Call) -> Response:
    """The org's changes feed: ``since`` a cursor (or 0, or now), optional long-poll."""
    params = call.query
    longest = call.services.settings.changes_longpoll_max_s
    feed = params.get("feed", "normal")
    if feed not in ("normal", "longpoll"):
        raise BadRequest("feed must be 'normal' or 'longpoll'.")
    raw = params.get("timeout", str(longest))
    try:
        wait = float(raw)
    except ValueError:
        raise BadRequest("timeout must be a number of seconds.") from None
    if not 0 <= wait <= longest:  # (NaN fails this too)
        raise BadRequest(f"timeout must be 0 to {longest} seconds.")
    if feed != "longpoll":
        wait = 0.0
    result = call.services.search.changes(
        call.who,
        since=params.get("since"),
        limit=parse_limit(params.get("limit"), default=100, maximum=1000),
        longpoll_s=wait,
    )
    return json_response(result, headers=dict(NO_STORE))
