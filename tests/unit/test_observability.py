"""Tracing off means the X-Ray SDK is never imported (cold start); on, it is real."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

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


FLUSH_PROBE = """
import json
from types import SimpleNamespace
from chalicelib.observability import count, lambda_handler

context = SimpleNamespace(function_name="probe", memory_limit_in_mb=128, aws_request_id="r-1",
                          invoked_function_arn="arn:aws:lambda:us-east-1:1:function:probe")

@lambda_handler
def handler(event, context):
    count("ProbeCount", 2)
    return "done"

assert handler({}, context) == "done"
"""


def test_a_handler_flushes_its_metrics_as_emf_on_every_invocation() -> None:
    env = {**os.environ, "POWERTOOLS_METRICS_DISABLED": "false",
           "POWERTOOLS_TRACE_DISABLED": "true", "POWERTOOLS_METRICS_NAMESPACE": "Probe"}  # fmt: skip
    out = subprocess.run(
        [sys.executable, "-c", FLUSH_PROBE], env=env, capture_output=True, text=True, check=True
    )
    emf = [json.loads(line) for line in out.stdout.splitlines() if '"_aws"' in line]
    assert any(doc.get("ProbeCount") == [2.0] or doc.get("ProbeCount") == 2.0 for doc in emf), out


def test_every_lambda_handler_in_functions_wears_the_one_decorator() -> None:
    root = Path(__file__).resolve().parents[2] / "functions"
    handlers = 0
    for path in root.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef) and node.name.endswith("handler"):
                handlers += 1
                names = [d.id for d in node.decorator_list if isinstance(d, ast.Name)]
                assert "lambda_handler" in names, f"{path.name}:{node.name}"
    assert handlers >= 5


EDGE_PROBE = """
import json, sys
from types import SimpleNamespace
import app

event = json.load(open("events/api_get_openapi.json"))
context = SimpleNamespace(function_name="api", memory_limit_in_mb=128, aws_request_id="r-1",
                          invoked_function_arn="arn:aws:lambda:us-east-1:1:function:api")
if sys.argv[1] == "longpoll":
    event["queryStringParameters"] = {"feed": "longpoll"}
    event["multiValueQueryStringParameters"] = {"feed": ["longpoll"]}
assert app.handler(event, context)["statusCode"] == 200
"""


@pytest.mark.parametrize("kind", ["plain", "longpoll"])
def test_every_request_records_latency_but_long_polls_and_the_breaker_gauge(kind: str) -> None:
    env = {**os.environ, "POWERTOOLS_METRICS_DISABLED": "false",
           "POWERTOOLS_TRACE_DISABLED": "true", "REDIS_URL": "redis://127.0.0.1:1/0"}  # fmt: skip
    root = Path(__file__).resolve().parents[2]
    out = subprocess.run([sys.executable, "-c", EDGE_PROBE, kind], env=env, cwd=root,
                         capture_output=True, text=True, check=True)  # fmt: skip
    emf = [json.loads(line) for line in out.stdout.splitlines() if '"_aws"' in line]
    names = {
        m["Name"] for doc in emf for d in doc["_aws"]["CloudWatchMetrics"] for m in d["Metrics"]
    }
    assert "CacheBreakerOpen" in names, out
    assert ("RequestLatency" in names) is (kind == "plain"), out
    assert ("ReadLatency" in names) is (kind == "plain"), out  # GET /openapi.json: a read
    assert "WriteLatency" not in names, out


def test_the_apis_metrics_are_also_published_per_function_version() -> None:
    """The rollback alarms watch the deployed version: every metric of an API
    invocation also has the dimension set service + version (the executed one)."""
    env = {**os.environ, "POWERTOOLS_METRICS_DISABLED": "false", "AWS_LAMBDA_FUNCTION_VERSION": "7",
           "POWERTOOLS_SERVICE_NAME": "docs",
           "POWERTOOLS_TRACE_DISABLED": "true", "REDIS_URL": "redis://127.0.0.1:1/0"}  # fmt: skip
    root = Path(__file__).resolve().parents[2]
    out = subprocess.run([sys.executable, "-c", EDGE_PROBE + EDGE_PROBE.split("import app")[1], "plain"],
                         env=env, cwd=root, capture_output=True, text=True, check=True)  # fmt: skip
    emf = [json.loads(line) for line in out.stdout.splitlines() if '"RequestLatency"' in line]
    assert len(emf) == 2, out  # two invocations, two flushes (the cold-start metric aside)
    for doc in emf:
        (directive,) = doc["_aws"]["CloudWatchMetrics"]
        assert directive["Dimensions"] == [["service"], ["service", "version"]]  # not piling up
        assert doc["version"] == "7"
        assert "RequestLatency" in {m["Name"] for m in directive["Metrics"]}


@pytest.mark.parametrize(
    ("method", "path", "query", "sli"),
    [
        ("GET", "/documents/d1", {}, "read"),
        ("HEAD", "/documents/d1", {}, "read"),
        ("POST", "/search", {}, "read"),
        ("GET", "/changes", {"feed": "normal"}, "read"),
        ("POST", "/documents", {}, "write"),
        ("PATCH", "/documents/d1", {}, "write"),
        ("DELETE", "/documents/d1", {}, "write"),
        ("POST", "/documents:batch", {}, "write"),
        ("GET", "/changes", {"feed": "longpoll"}, None),
        ("GET", "/changes", {"feed": "eventsource"}, None),
        ("OPTIONS", "/documents", {}, None),
    ],
)
def test_latency_slis_split_reads_from_writes_and_leave_waits_out(
    method: str, path: str, query: dict[str, str], sli: str | None
) -> None:
    """docs/slo.md: p99 < 200 ms for reads and for writes, long polls and streams excluded."""
    from chalicelib.observability import latency_sli

    assert latency_sli(method, path, query) == sli
