"""Cold start: what ``import app`` leaves for later (benchmarks/bench_import.py measures it)."""

from __future__ import annotations

import os
import subprocess
import sys


def test_the_openapi_models_wait_for_the_openapi_route() -> None:
    """The OpenAPI module (its pydantic models) is imported by ``GET /openapi.json``,
    not by every cold start; the document is still whole when asked for."""
    code = (
        "import sys, app; print('chalicelib.api.openapi' in sys.modules); "
        "from chalice.test import Client; c = Client(app.app); "
        "print(c.http.get('/openapi.json').json_body['openapi'][:1]); "
        "print('chalicelib.api.openapi' in sys.modules)"
    )
    env = {**os.environ, "POWERTOOLS_TRACE_DISABLED": "true", "POWERTOOLS_METRICS_DISABLED": "true"}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True
    )
    assert out.stdout.split() == ["False", "3", "True"]
