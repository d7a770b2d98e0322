"""Views of signed webhooks (docs/webhooks.md): admins only, the caller's org only.

``POST /webhooks`` answers the endpoint with its ``secret`` (the only time it
is shown; ``POST /webhooks/{id}/rotate-secret`` makes a new one), ``GET
/webhooks`` lists them, ``DELETE /webhooks/{id}`` removes one with its
deliveries, ``GET /webhooks/{id}/deliveries`` lists the newest deliveries with
their attempts, ``POST .../deliveries/{delivery_id}/replay`` sends a dead (or
delivered) one again.
"""

from __future__ import annotations

from chalice.app import Response

from chalicelib.api.endpoint import NO_STORE, Call
from chalicelib.api.http import json_response
from chalicelib.domain.flags import WEBHOOKS, require
from chalicelib.domain.model import parse_limit


def create_webhook(call: Call) -> Response:
    call.who.require("admin")  # before the body is looked at: a 403, not a 422
    # the webhooks flag (docs/feature-flags.md): off for the org, no new endpoint
    require(call.services.flags, WEBHOOKS, org=call.who.org, user=call.who.sub)
    endpoint = call.services.webhooks.register(call.who, call.json())
    headers = {**NO_STORE, "Location": f"/webhooks/{endpoint['id']}"}
    return json_response(endpoint, status=201, headers=headers)


def list_webhooks(call: Call) -> Response:
    return json_response(call.services.webhooks.list(call.who), headers=dict(NO_STORE))


def delete_webhook(call: Call, webhook_id: str) -> Response:
    call.services.webhooks.delete(call.who, webhook_id)
    return Response(body="", status_code=204, headers=dict(NO_STORE))


def rotate_secret(call: Call, webhook_id: str) -> Response:
    call.who.require("admin")
    body = call.json() if call.request.raw_body else None
    endpoint = call.services.webhooks.rotate(call.who, webhook_id, body)
    return json_response(endpoint, headers=dict(NO_STORE))


def list_deliveries(call: Call, webhook_id: str) -> Response:
    limit = parse_limit(call.query.get("limit"), default=50, maximum=200)
    found = call.services.webhooks.deliveries(call.who, webhook_id, limit)
    return json_response(found, headers=dict(NO_STORE))


def replay_delivery(call: Call, webhook_id: str, delivery_id: str) -> Response:
    delivery = call.services.webhooks.replay(call.who, webhook_id, delivery_id)
    return json_response(delivery, status=202, headers=dict(NO_STORE))
