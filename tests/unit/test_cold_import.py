"""Cold start: what ``import app`` leaves for later (benchmarks/bench_import.py measures it)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path


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


def test_the_tracer_patches_only_the_libraries_each_function_declares() -> None:
    """With tracing on (as in AWS), importing a handler with its function's environment
    from template.yaml patches exactly its DOCS_TRACE_PATCH, not every library the X-Ray
    SDK supports (Powertools' default imports psycopg, sqlite3, httplib ... for nothing)."""
    from tests.unit.test_template import _env, _function, _functions, _template

    template = _template()
    seen: dict[tuple[str, str], list[str]] = {}
    for name in _functions(template):
        function = _function(template, name)
        if function.get("InlineCode"):
            continue  # the Cognito trigger: stdlib only, no Powertools
        declared = _env(template, name).get("DOCS_TRACE_PATCH")
        assert isinstance(declared, str), f"{name} declares no DOCS_TRACE_PATCH"
        module = function["Handler"].rpartition(".")[0]
        seen.setdefault((module, declared), []).append(name)
    assert len(seen) >= 8
    code = (
        "import sys, json, importlib; importlib.import_module(sys.argv[1]); "
        "from aws_xray_sdk.core import patcher; "
        "print(json.dumps(sorted(patcher._PATCHED_MODULES)))"
    )
    for (module, declared), names in seen.items():
        env = {k: v for k, v in os.environ.items() if not k.startswith(("POWERTOOLS_", "DOCS_"))}
        env.update(
            AWS_LAMBDA_FUNCTION_NAME=names[0],  # Powertools traces only inside Lambda
            LAMBDA_TASK_ROOT=str(Path(__file__).resolve().parents[2]),
            AWS_DEFAULT_REGION="us-east-1",
            AWS_XRAY_CONTEXT_MISSING="IGNORE_ERROR",
            POWERTOOLS_METRICS_DISABLED="true",
            DOCS_TRACE_PATCH=declared,
        )
        out = subprocess.run(
            [sys.executable, "-c", code, module],
            capture_output=True,
            text=True,
            env=env,
            check=True,
        )
        patched = json.loads(out.stdout.strip().splitlines()[-1])
        wanted = sorted(filter(None, (m.strip() for m in declared.split(","))))
        assert patched == wanted, (names, module)
