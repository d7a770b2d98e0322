"""Views of search and the changes feed: reads scoped to the caller's org, never cached."""

from __future__ import annotations

import json

from chalice.app import Response

from chalicelib.api.endpoint import NO_STORE, Call
from chalicelib.api.http import json_response
from chalicelib.domain.errors import BadRequest
from chalicelib.domain.flags import REALTIME, require
from chalicelib.domain.model import make_etag, parse_limit


def search(call: Call) -> Response:
    """Full-text search in the caller's org; never cached (the index moves on)."""
    result = call.services.search.search(call.who, call.json())
    return json_response(result, headers=dict(NO_STORE))


def changes(call: Call) -> Response:
    """The org's changes feed: ``since`` a cursor (or 0, or now), optional long-poll."""
    params = call.query
    longest = call.services.settings.changes_longpoll_max_s
    feed = params.get("feed", "normal")
    if feed == "eventsource":
        return _event_source(call)
    if feed not in ("normal", "longpoll"):
        raise BadRequest("feed must be 'normal', 'longpoll' or 'eventsource'.")
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


# -- real-time (docs/realtime.md) ----------------------------------------
def _event_source(call: Call) -> Response:
    """``feed=eventsource`` through API Gateway REST and Lambda, which cannot stream:
    the changes available now as one ``text/event-stream`` body that ends, with
    ``retry:`` so an EventSource reconnects (sending ``Last-Event-ID``) and reads on:
    a poll in SSE clothing.  The local server streams it instead; in AWS the
    WebSocket API is the live path.  The ``realtime`` feature flag gates it (403
    ``feature-disabled``; ``feed=normal`` and ``longpoll`` are the fallback)."""
    require(call.services.flags, REALTIME, org=call.who.org, user=call.who.sub)
    since = call.header("Last-Event-ID") or call.query.get("since")
    limit = parse_limit(call.query.get("limit"), default=100, maximum=1000)
    page = call.services.search.changes(call.who, since=since, limit=limit)
    lines = ["retry: 5000", "", ": one batch: this server cannot stream (docs/realtime.md)", ""]
    for change in page["changes"]:
        data = {"type": "change", **change, "etag": make_etag(call.who.org, change["id"],
                                                              change["version"])}  # fmt: skip
        lines += [f"id: {change['seq']}", "event: change", f"data: {json.dumps(data)}", ""]
    if not page["changes"]:  # resume from here, not from the request's cursor
        lines += [f"id: {page['next']}", "event: caught-up", "data: {}", ""]
    headers: dict[str, str | list[str]] = {**NO_STORE, "Content-Type": "text/event-stream"}
    return Response(body="\n".join(lines) + "\n", status_code=200, headers=headers)
