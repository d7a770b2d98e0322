"""API Gateway's own logs in template.yaml hold no token.

A WebSocket client may send its JWT as ``?token=`` or as the
``Sec-WebSocket-Protocol`` value, and every HTTP request carries one in
``Authorization``.  So an access-log format may use only the context
variables listed here (ids, timings, status, the caller's ``sub``): none of
them can hold a query string or a header.  Execution logging with full
request data (``DataTraceEnabled``) would log headers too: it stays off.
"""

from __future__ import annotations

import re
from typing import Any

from tests.unit.test_template import _template

SAFE_CONTEXT = {
    "requestId",
    "extendedRequestId",
    "identity.sourceIp",
    "httpMethod",
    "path",
    "resourcePath",
    "status",
    "responseLatency",
    "integrationLatency",
    "responseLength",
    "requestTime",
    "requestTimeEpoch",
    "authorizer.claims.sub",
    "authorizer.principalId",  # the Lambda authorizer's: the verified sub (functions/authorizer.py)
    "routeKey",
    "eventType",
    "connectionId",
    "stage",
    "apiId",
    "domainName",
    "error.responseType",
    "integration.status",
}
VARIABLE = re.compile(r"\$(\w+(?:\.\w+)*)")


def _access_log_formats() -> dict[str, str]:
    formats: dict[str, str] = {}
    for name, resource in _template()["Resources"].items():
        props: dict[str, Any] = resource.get("Properties") or {}
        for key in ("AccessLogSetting", "AccessLogSettings"):
            if key in props:
                formats[name] = props[key]["Format"]
    return formats


def test_every_api_has_an_access_log_and_no_field_can_hold_a_credential() -> None:
    formats = _access_log_formats()
    assert {"Api", "RealtimeStage"} <= set(formats), formats
    for name, fmt in formats.items():
        variables = VARIABLE.findall(fmt)
        assert variables, (name, fmt)
        for variable in variables:
            assert variable.startswith("context."), (name, variable)
            assert variable.removeprefix("context.") in SAFE_CONTEXT, (name, variable)


def test_the_context_variables_allowed_name_no_query_or_header() -> None:
    for variable in SAFE_CONTEXT:
        assert not re.search(r"query|header|override|token|protocol$|input", variable, re.I)


def test_no_stage_logs_full_request_data() -> None:
    for name, resource in _template()["Resources"].items():
        props: dict[str, Any] = resource.get("Properties") or {}
        settings = [
            *(props.get("MethodSettings") or []),
            props.get("DefaultRouteSettings") or {},
            *(props.get("RouteSettings") or {}).values(),
        ]
        for setting in settings:
            assert setting.get("DataTraceEnabled") in (None, False), name
