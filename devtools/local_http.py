"""The local server's limits and its own answers (``devtools/http_connection.py``)."""

from __future__ import annotations

import dataclasses
import os
import time
from typing import Any

from chalicelib.api.http import SECURITY_HEADERS, STATUS_PROBLEMS, problem
from devtools.logline import log_line

MAX_REQUEST_BYTES = 10 * 1024 * 1024  # API Gateway's payload limit
# API Gateway (REST): "total combined size of request line and header values" is 10240 bytes
MAX_HEADER_BYTES = 10240


@dataclasses.dataclass(frozen=True)
class Limits:
    """What one connection may cost a worker; from ``DOCS_LOCAL_*`` (docs/local.md)."""

    header_timeout_s: float = 10.0  # request line + headers, in total (not per read)
    body_timeout_s: float = 30.0  # the whole body, in total; also bounds writing the response
    max_header_bytes: int = MAX_HEADER_BYTES
    max_body_bytes: int = MAX_REQUEST_BYTES
    idle_timeout_s: float = 5.0  # a keep-alive connection's wait for its next request
    max_requests: int = 100  # requests on one connection, then it is closed

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> Limits:
        env = dict(os.environ if env is None else env)
        limits = cls(
            header_timeout_s=float(env.get("DOCS_LOCAL_HEADER_TIMEOUT_S", cls.header_timeout_s)),
            body_timeout_s=float(env.get("DOCS_LOCAL_BODY_TIMEOUT_S", cls.body_timeout_s)),
            max_header_bytes=int(env.get("DOCS_LOCAL_MAX_HEADER_BYTES", cls.max_header_bytes)),
            idle_timeout_s=float(env.get("DOCS_LOCAL_IDLE_TIMEOUT_S", cls.idle_timeout_s)),
            max_requests=int(env.get("DOCS_LOCAL_MAX_REQUESTS", cls.max_requests)),
        )
        if min(dataclasses.astuple(limits)) <= 0:
            raise ValueError(f"local server limits must be positive: {limits}")
        return limits


def local_problem(
    status: int, detail: str, instance: str | None, rid: str
) -> tuple[int, dict[str, str], bytes]:
    """The local server's own answers, with every header the app's responses carry."""
    slug, title = STATUS_PROBLEMS.get(status, ("error", "Error"))
    response = problem(
        status,
        slug,
        title,
        detail,
        instance=instance,
        headers={**SECURITY_HEADERS, "X-Request-Id": rid},
    )
    headers = {name: str(value) for name, value in response.headers.items()}
    return status, headers, str(response.body).encode()


def log_request(method: str, path: str, status: int | None, started: float, **extra: Any) -> None:
    """One JSON line per request (a credential in its URL, ``?token=``, is redacted);
    ``status`` None: the client went away before its answer."""
    log_line(
        "request" if status is not None else "connection dropped",
        level="INFO" if status is not None else "WARNING",
        method=method,
        path=path,
        status=status,
        ms=round((time.perf_counter() - started) * 1000, 2),
        worker=os.getpid(),
        **extra,
    )
