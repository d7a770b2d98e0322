"""Tracing off means the X-Ray SDK is never imported (cold start); on, it is real."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

PROBE = "import sys, app; print('aws_xray_sdk.core' in sys.modules, type(app.tracer).__name__)"


@pytest.mark.parametrize(
    ("disabled", "expected"), [("true", "False _NoTracer"), ("false", "True Tracer")]
)
def test_the_xray_sdk_is_imported_only_when_tracing_is_on(disabled: str, expected: str) -> None:
    env = {**os.environ, "POWERTOOLS_TRACE_DISABLED": disabled, "AWS_XRAY_SDK_ENABLED": "false"}
    out = subprocess.run(
        [sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, check=True
    )
    assert out.stdout.split("\n")[-2] == expected, out.stdout + out.stderr


def test_the_stand_in_leaves_functions_as_they_are() -> None:
    from chalicelib.observability import _NoTracer

    def handler(event: dict[str, str], context: object) -> str:
        return "ok"

    tracer = _NoTracer()
    assert tracer.capture_lambda_handler(capture_response=False)(handler) is handler
    assert tracer.capture_method(capture_response=False)(handler) is handler
    tracer.put_annotation("org", "acme")
