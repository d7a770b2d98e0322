"""Real-time updates in AWS: the WebSocket API's routes and the fan-out.

- ``ws_handler``: every route of the API Gateway WebSocket API.
  ``$connect`` authenticates the same JWT as the HTTP API (``chalicelib.api.auth``;
  the org only from the verified token), taken from ``Sec-WebSocket-Protocol``
  (``bearer.<JWT>``, browsers cannot set headers) or ``?token=``; it answers
  401/403/503 without registering anything (403 also for a browser whose
  ``Origin`` is not on ``DOCS_CORS_ORIGINS``, and 403 ``feature-disabled`` when
  the ``realtime`` feature flag is off for the caller's org or user; a client
  without ``Origin`` is not a browser and may connect).  ``subscribe``, ``unsubscribe`` and
  ``$default`` (the route selection is ``$request.body.action``; ``auth`` and
  ``ping`` arrive there) hand the frame to ``RealtimeService.handle`` and post
  its answers back to that connection; a bad frame gets an error frame and the
  connection stays open; a frame after the token expired (or was revoked) gets
  a ``close`` frame and the connection is deleted.
  ``$disconnect`` forgets the connection.
- ``fanout_handler``: the fan-out, on the nudge/sweep pattern of the search
  sync: an SQS queue that writes nudge (any message: "there is something
  new") and an EventBridge schedule every minute (what a lost nudge left
  behind, and the lag metric).  Both drain the outbox from the fan-out's own
  cursor until caught up or close to the timeout.

The local server runs the same ``RealtimeService`` and ``FanOut``
(``devtools/realtime_hub.py``) with a poster of its own.
"""

from __future__ import annotations

import time
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from chalicelib import bootstrap
from chalicelib.api.cors import check_origin
from chalicelib.api.problems import problem_of
from chalicelib.domain.errors import DomainError, Unauthorized
from chalicelib.domain.flags import REALTIME, require
from chalicelib.domain.realtime import Credentials, closing, encode, token_from_subprotocols
from chalicelib.observability import count, lambda_handler, logger

FANOUT_RESERVE_S = 5.0  # stop draining this long before the function's timeout


def _header(event: dict[str, Any], name: str) -> str | None:
    for key, value in (event.get("headers") or {}).items():
        if key.lower() == name:
            return str(value)
    return None


def authenticate(event: dict[str, Any]) -> tuple[Credentials, str | None]:
    """The caller of a ``$connect`` (with its token's expiry), and the subprotocol
    to select (if any)."""
    offered = (_header(event, "sec-websocket-protocol") or "").split(",")
    token, selected = token_from_subprotocols(offered)
    if token is None:
        query = event.get("queryStringParameters") or {}
        token = query.get("token") or None
    if token is None:
        scheme, _, value = (_header(event, "authorization") or "").partition(" ")
        token = value.strip() if scheme.lower() == "bearer" and value.strip() else None
    if token is None:
        raise Unauthorized(
            "Send the token as a subprotocol ('bearer.<token>') or as ?token=<token>."
        )
    request_id = (event.get("requestContext") or {}).get("requestId")
    return bootstrap.container().stream_credentials(token, request_id), selected


def _connect(event: dict[str, Any], connection_id: str) -> dict[str, Any]:
    """200, or the refusal: 401/403 are the client's (a normal answer); a 5xx (the
    registry is out) is ours and is counted (``RealtimeConnectFailed``, alarmed)."""
    try:
        check_origin(_header(event, "origin"), bootstrap.container().settings.cors_origins)
        creds, selected = authenticate(event)
        # the "realtime" flag off for this org or user: 403 feature-disabled
        require(bootstrap.container().flags, REALTIME, org=creds.who.org, user=creds.who.sub)
        bootstrap.container().realtime.connect(connection_id, creds)
    except DomainError as exc:
        status = problem_of(exc).status
        if status >= 500:
            logger.warning("websocket refused", status=status)
            count("RealtimeConnectFailed")
        else:
            logger.info("websocket refused", status=status)
        return {"statusCode": status, "body": exc.detail}
    headers = {"Sec-WebSocket-Protocol": selected} if selected else {}
    return {"statusCode": 200, "headers": headers}


@lambda_handler
def ws_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    ctx = event.get("requestContext") or {}
    route = str(ctx.get("routeKey") or "$default")
    connection_id = str(ctx.get("connectionId") or "")
    if route == "$connect":
        return _connect(event, connection_id)
    c = bootstrap.container()
    if route == "$disconnect":
        try:
            c.realtime.disconnect(connection_id)
        except DomainError:  # the registry's TTL forgets it anyway
            logger.warning("realtime disconnect not recorded", connection=connection_id)
        return {"statusCode": 200}
    body = event.get("body") or ""
    if event.get("isBase64Encoded"):
        import base64

        body = base64.b64decode(body)
    answers = c.realtime.handle(connection_id, body)
    for frame in answers:
        c.realtime_poster.post(connection_id, encode(frame))
    ended = closing(answers)
    if ended is not None:  # expired, revoked or replaced token: the close frame went first
        c.realtime_poster.close(connection_id, ended["code"], ended["reason"])
    return {"statusCode": 200}


@lambda_handler
def fanout_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """SQS nudges or the schedule: drain from the fan-out's cursor (a failure raises,
    so SQS redelivers the nudges; the cursor did not move, nothing is lost)."""
    fanout = bootstrap.container().realtime_fanout()
    remaining_s = context.get_remaining_time_in_millis() / 1000 if context else 30.0
    deadline = time.monotonic() + max(1.0, remaining_s - FANOUT_RESERVE_S)
    report = fanout.drain(deadline=deadline)
    result: dict[str, Any] = report.as_dict()
    if "Records" not in (event or {}):  # the schedule: publish the lag
        result.update(fanout.stats())
    if report.rows:
        logger.info("realtime fan-out", extra=result)
    return result
