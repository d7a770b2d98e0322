"""Powertools Logger, Tracer and Metrics, one instance each per process.

Locally the server turns tracing and EMF metrics off by default
(POWERTOOLS_TRACE_DISABLED / POWERTOOLS_METRICS_DISABLED); in AWS they are on.
"""

from __future__ import annotations

import os

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.metrics.functions import is_metrics_disabled

SERVICE = os.environ.get("POWERTOOLS_SERVICE_NAME", "docs")

logger = Logger(service=SERVICE)
tracer = Tracer(service=SERVICE)
metrics = Metrics(namespace=os.environ.get("POWERTOOLS_METRICS_NAMESPACE", "DocsService"))

# Powertools buffers metrics even when disabled and prints them once 100 pile
# up, so with POWERTOOLS_METRICS_DISABLED we do not record them at all.
METRICS_ON = not is_metrics_disabled()


def tracing_disabled() -> bool:
    return os.environ.get("POWERTOOLS_TRACE_DISABLED", "false").lower() in ("1", "true", "yes")


def count(name: str, value: float = 1) -> None:
    """Add to an EMF count metric (flushed once per invocation by ``log_metrics``)."""
    if METRICS_ON:
        metrics.add_metric(name=name, unit=MetricUnit.Count, value=value)


def milliseconds(name: str, value: float) -> None:
    if METRICS_ON:
        metrics.add_metric(name=name, unit=MetricUnit.Milliseconds, value=value)
