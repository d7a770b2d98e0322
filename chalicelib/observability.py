"""Powertools Logger, Tracer and Metrics, one instance each per process.

Every log line passes through ``chalicelib.redaction.redact`` (the formatter
below): no token, signature or ``Authorization`` value reaches a log, even
when an event is logged whole (``POWERTOOLS_LOGGER_LOG_EVENT``).

Locally the server turns tracing and EMF metrics off by default
(POWERTOOLS_TRACE_DISABLED / POWERTOOLS_METRICS_DISABLED); in AWS they are on.

With tracing off the X-Ray SDK is never imported: a Powertools ``Tracer``,
even a disabled one, imports ``aws_xray_sdk.core`` (about 150 ms of a cold
start), so ``tracer`` is then a stand-in whose decorators return the function
unchanged.  With tracing on, the SDK patches only the libraries the function
declares (``DOCS_TRACE_PATCH``).
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, Literal, Protocol, TypeVar, cast

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.logging.formatter import LambdaPowertoolsFormatter
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.metrics.functions import is_metrics_disabled

from chalicelib.redaction import redact

SERVICE = os.environ.get("POWERTOOLS_SERVICE_NAME", "docs")
F = TypeVar("F", bound=Callable[..., Any])


class TracerLike(Protocol):
    """What the code uses of Powertools' ``Tracer`` (decorators are always called
    with keyword arguments: ``@tracer.capture_method(capture_response=False)``)."""

    def capture_method(self, *, capture_response: bool | None = None) -> Callable[[F], F]: ...

    def capture_lambda_handler(
        self, *, capture_response: bool | None = None
    ) -> Callable[[F], F]: ...

    def put_annotation(self, key: str, value: str | float | bool) -> None: ...


class _NoTracer:
    """Tracing is off: every decorator hands the function back as it was."""

    def capture_method(self, *, capture_response: bool | None = None) -> Callable[[F], F]:
        return _identity

    def capture_lambda_handler(self, *, capture_response: bool | None = None) -> Callable[[F], F]:
        return _identity

    def put_annotation(self, key: str, value: str | float | bool) -> None:
        return None


def _identity(fn: F) -> F:
    return fn


def tracing_disabled() -> bool:
    return os.environ.get("POWERTOOLS_TRACE_DISABLED", "false").lower() in ("1", "true", "yes")


def trace_patch_modules() -> tuple[str, ...]:
    """The libraries the X-Ray SDK patches in this function: ``DOCS_TRACE_PATCH``,
    comma-separated, declared per function in template.yaml (none when unset).

    Powertools' default patches every library the SDK supports that is installed,
    importing each of them at cold start (psycopg, sqlite3, httplib ... : about 400
    modules more for the API); the functions name only the ones they call through."""
    raw = os.environ.get("DOCS_TRACE_PATCH", "")
    return tuple(name.strip() for name in raw.split(",") if name.strip())


def _tracer() -> TracerLike:
    if tracing_disabled():
        return _NoTracer()
    from aws_lambda_powertools import Tracer  # imports the X-Ray SDK

    traced = Tracer(service=SERVICE, auto_patch=False)
    modules = trace_patch_modules()
    if modules:  # an empty list would mean "all" to Powertools
        traced.patch(modules)
    return cast(TracerLike, traced)


class RedactingFormatter(LambdaPowertoolsFormatter):
    """Powertools' JSON lines, with every credential redacted (message, extra
    keys, exception text, a logged event's headers and query)."""

    def __init__(self) -> None:
        super().__init__(json_default=lambda value: redact(str(value)))

    def serialize(self, log: Any) -> str:
        return super().serialize(redact(log))


logger = Logger(service=SERVICE, logger_formatter=RedactingFormatter())
tracer = _tracer()
metrics = Metrics(namespace=os.environ.get("POWERTOOLS_METRICS_NAMESPACE", "DocsService"))

# Powertools buffers metrics even when disabled and prints them once 100 pile
# up, so with POWERTOOLS_METRICS_DISABLED we do not record them at all.
METRICS_ON = not is_metrics_disabled()


def per_version() -> None:
    """Publish this invocation's metrics per function version too: a second dimension
    set, service + version (the executed version, which Lambda puts in the
    environment).  The API's deploy rolls back on its new version's own ServerErrors
    and RequestLatency (template.yaml ``ApiNewVersion*Alarm``).  Cleared at each flush."""
    version = os.environ.get("AWS_LAMBDA_FUNCTION_VERSION", "")
    if METRICS_ON and version.isdigit():
        metrics.add_dimensions(service=SERVICE, version=version)


def count(name: str, value: float = 1) -> None:
    """Add to an EMF count metric (flushed once per invocation by ``log_metrics``)."""
    if METRICS_ON:
        metrics.add_metric(name=name, unit=MetricUnit.Count, value=value)


def milliseconds(name: str, value: float) -> None:
    if METRICS_ON:
        metrics.add_metric(name=name, unit=MetricUnit.Milliseconds, value=value)


# The latency SLIs (docs/slo.md, metrics ReadLatency and WriteLatency): reads and
# writes apart; requests that wait on purpose (long polls, event streams) count
# toward neither.
_WAITING_FEEDS = frozenset({"longpoll", "eventsource"})
_READ_METHODS = frozenset({"GET", "HEAD"})
_READS_BY_POST = frozenset({"/search"})  # a query with a body: a read


def latency_sli(method: str, path: str, query: dict[str, str]) -> Literal["read", "write"] | None:
    """The latency SLI a request counts toward, or None (long polls, streams, CORS
    preflights)."""
    if query.get("feed") in _WAITING_FEEDS or method == "OPTIONS":
        return None
    if method in _READ_METHODS or (method == "POST" and path in _READS_BY_POST):
        return "read"
    return "write"


def gauge(name: str, value: float) -> None:
    """A state sampled once per invocation (read it with Maximum/Average)."""
    if METRICS_ON:
        metrics.add_metric(name=name, unit=MetricUnit.Count, value=value)


# The deploy hook's load probe: ``{SMOKE_PROBE: "load"}`` is answered by the entry
# point itself, so a new version proves it imports and starts without doing any work.
SMOKE_PROBE = "docs_smoke"


def lambda_handler(fn: F) -> F:
    """A Lambda entry point: request-scoped structured logging (cold start, request
    id), an X-Ray segment when tracing is on, and its EMF metrics flushed at the
    end of every invocation when metrics are on.  Every handler in ``functions/``
    wears this one decorator.  It answers the deploy hook's load probe itself."""
    wrapped: F = fn
    if METRICS_ON:
        wrapped = metrics.log_metrics(wrapped)  # type: ignore[assignment]
    wrapped = tracer.capture_lambda_handler(capture_response=False)(wrapped)
    inject: Callable[[F], F] = logger.inject_lambda_context(clear_state=True)
    inner = inject(wrapped)

    @functools.wraps(fn)
    def entry(event: Any, context: Any) -> Any:
        if isinstance(event, dict) and event.get(SMOKE_PROBE) == "load":
            return {"smoke": "ok"}
        return inner(event, context)

    return cast(F, entry)


@contextmanager
def subsegment(name: str, **annotations: str | int | None) -> Iterator[None]:
    """An X-Ray subsegment around a call to a dependency (``postgres.transaction``,
    ``redis.get`` ...), annotated with ids, never with SQL or values.  Free when
    tracing is off."""
    if isinstance(tracer, _NoTracer):
        yield
        return
    provider: Any = getattr(tracer, "provider")  # noqa: B009 - the Powertools Tracer's
    with provider.in_subsegment(name) as segment:
        for key, value in annotations.items():
            if value is not None:
                segment.put_annotation(key, value)
        yield


def annotate(**annotations: str | None) -> None:
    """X-Ray annotations (indexed, searchable: ``annotation.org = "acme"``) on the
    current segment, e.g. the org and document id of a request."""
    if isinstance(tracer, _NoTracer):
        return
    for key, value in annotations.items():
        if value is not None:
            tracer.put_annotation(key, value)
