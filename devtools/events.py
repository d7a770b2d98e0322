"""Build API Gateway (REST, proxy) events exactly as API Gateway would.

Chalice routes on ``requestContext.resourcePath`` (the resource template,
e.g. ``/documents/{doc_id}``), not on the raw path, so the event must carry
the matching resource and ``pathParameters``; ``match_route`` finds them in
the app's own route table.  Used by the local server, tests and benchmarks.

``invoke`` calls any handler the way Lambda does (event + context object); the
local stack calls every handler through it.
"""

from __future__ import annotations

import base64
import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, TypeVar
from urllib.parse import parse_qsl, unquote, urlsplit

T = TypeVar("T")


@dataclass(frozen=True)
class Route:
    resource: str
    regex: re.Pattern[str]
    names: tuple[str, ...]


@lru_cache(maxsize=4)
def _compile(resources: tuple[str, ...]) -> list[Route]:
    routes = []
    for resource in resources:
        names = tuple(re.findall(r"{([^}+]+)\+?}", resource))
        pattern = re.sub(r"{[^}]+\+}", "(.+)", resource)
        pattern = re.sub(r"{[^}]+}", "([^/]+)", pattern)
        routes.append(Route(resource, re.compile(f"^{pattern}$"), names))
    # literal segments win over parameters, as in API Gateway
    routes.sort(key=lambda r: (r.resource.count("{"), -len(r.resource)))
    return routes


def match_route(resources: tuple[str, ...], path: str) -> tuple[str, dict[str, str]] | None:
    for route in _compile(resources):
        m = route.regex.match(path)
        if m:
            return route.resource, {
                n: unquote(v) for n, v in zip(route.names, m.groups(), strict=True)
            }
    return None


def api_gateway_event(
    resources: tuple[str, ...],
    method: str,
    raw_path: str,
    *,
    headers: dict[str, str] | None = None,
    body: bytes | None = None,
    source_ip: str = "127.0.0.1",
    stage: str = "api",
) -> dict[str, Any] | None:
    """A REST API proxy event for this request; None when no resource matches."""
    split = urlsplit(raw_path)
    path = split.path or "/"
    matched = match_route(resources, path)
    if matched is None:
        return None
    resource, params = matched
    query: dict[str, str] = {}
    multi: dict[str, list[str]] = {}
    for key, value in parse_qsl(split.query, keep_blank_values=True):
        query[key] = value
        multi.setdefault(key, []).append(value)
    hdrs = dict(headers or {})
    encoded = False
    text: str | None = None
    if body:
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            text, encoded = base64.b64encode(body).decode(), True
    now = time.time()
    return {
        "resource": resource,
        "path": path,
        "httpMethod": method.upper(),
        "headers": hdrs,
        "multiValueHeaders": {k: [v] for k, v in hdrs.items()},
        "queryStringParameters": query or None,
        "multiValueQueryStringParameters": multi or None,
        "pathParameters": params or None,
        "stageVariables": None,
        "body": text,
        "isBase64Encoded": encoded,
        "requestContext": {
            "resourcePath": resource,
            "httpMethod": method.upper(),
            "path": f"/{stage}{path}",
            "stage": stage,
            "requestId": str(uuid.uuid4()),
            "requestTime": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(now)),
            "requestTimeEpoch": int(now * 1000),
            "identity": {"sourceIp": source_ip, "userAgent": hdrs.get("User-Agent", "")},
            "protocol": "HTTP/1.1",
            "accountId": "000000000000",
            "apiId": "local",
        },
    }


@dataclass
class LambdaContext:
    """The Lambda context object: what Powertools and the handlers read."""

    function_name: str = "docs-api"
    memory_limit_in_mb: int = 1024
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:000000000000:function:docs-api"
    aws_request_id: str = ""
    function_version: str = "$LATEST"
    log_group_name: str = "/aws/lambda/docs-api"
    log_stream_name: str = "local"
    deadline: float = 0.0  # time.monotonic() when the invocation times out

    @classmethod
    def new(cls) -> LambdaContext:
        """The API function's context (tests and benchmarks call ``app.handler`` with it)."""
        return cls.for_function("docs-api")

    @classmethod
    def for_function(
        cls, function_name: str, *, timeout_s: float = 29.0, memory_mb: int = 1024
    ) -> LambdaContext:
        return cls(
            function_name=function_name,
            memory_limit_in_mb=memory_mb,
            invoked_function_arn=f"arn:aws:lambda:us-east-1:000000000000:function:{function_name}",
            aws_request_id=str(uuid.uuid4()),
            log_group_name=f"/aws/lambda/{function_name}",
            deadline=time.monotonic() + timeout_s,
        )

    def get_remaining_time_in_millis(self) -> int:
        if not self.deadline:
            return 29_000
        return max(0, int((self.deadline - time.monotonic()) * 1000))


def invoke(
    handler: Callable[[dict[str, Any], Any], T],
    event: dict[str, Any],
    function_name: str,
    *,
    timeout_s: float = 29.0,
) -> T:
    """Call a Lambda handler as Lambda does: the event and a fresh context object
    (its own request id and deadline).  Every local caller of a handler uses this."""
    return handler(event, LambdaContext.for_function(function_name, timeout_s=timeout_s))


def scheduled_event(rule: str, *, region: str = "us-east-1") -> dict[str, Any]:
    """An EventBridge Scheduler/rule event (``Type: Schedule`` in template.yaml)."""
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": "000000000000",
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "region": region,
        "resources": [f"arn:aws:events:{region}:000000000000:rule/{rule}"],
        "detail": {},
    }
