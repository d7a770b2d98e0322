"""Powertools Logger, Tracer and Metrics, one instance each per process.

Locally the server turns tracing and EMF metrics off by default
(POWERTOOLS_TRACE_DISABLED / POWERTOOLS_METRICS_DISABLED); in AWS they are on.
"""

from __future__ import annotations

import os

from aws_lambda_powertools import Logger, Metrics, Tracer

SERVICE = os.environ.get("POWERTOOLS_SERVICE_NAME", "docs")

logger = Logger(service=SERVICE)
tracer = Tracer(service=SERVICE)
metrics = Metrics(namespace=os.environ.get("POWERTOOLS_METRICS_NAMESPACE", "DocsService"))
