"""No token in a Lambda function's log, even with whole events logged.

Powertools logs every event whole when ``POWERTOOLS_LOGGER_LOG_EVENT`` is
true (an operator may turn it on to debug); the events carry the caller's JWT
in ``Authorization``, in ``Sec-WebSocket-Protocol`` (``bearer.<JWT>``) and in
``?token=``.  The probes run the real handlers in a fresh process, at DEBUG,
with event logging on, and read everything the process wrote.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import JWT_SECRET, make_token

ROOT = Path(__file__).resolve().parents[2]
PROBE = """
import json, sys
from types import SimpleNamespace

token = sys.argv[1]
context = SimpleNamespace(function_name="probe", memory_limit_in_mb=128, aws_request_id="r-1",
                          invoked_function_arn="arn:aws:lambda:us-east-1:1:function:probe")

def load(name):
    return json.loads(open(f"events/{name}.json").read().replace("{{token}}", token))

connect = load("ws_connect")
connect["queryStringParameters"] = {"token": token}
connect["headers"]["Authorization"] = f"Bearer {token}"

from functions import realtime
realtime.ws_handler(connect, context)

import app
event = load("api_get_document")
event["queryStringParameters"] = {"access_token": token}
event["multiValueQueryStringParameters"] = {"access_token": [token]}
app.handler(event, context)

from chalicelib.observability import logger
logger.info(f"a message that quotes /realtime?token={token}", extra={"id_token": token})
try:
    raise ValueError(f"bad token {token}")
except ValueError:
    logger.exception("raised")
"""


def test_no_token_reaches_a_functions_log_even_with_events_logged() -> None:
    token = make_token(org="probe")
    env = {
        **os.environ,
        "POWERTOOLS_LOGGER_LOG_EVENT": "true",
        "POWERTOOLS_LOG_LEVEL": "DEBUG",
        "DOCS_JWT_SECRET": JWT_SECRET,
        "REDIS_URL": "redis://127.0.0.1:1/0",
    }
    probe = [sys.executable, "-c", PROBE, token]
    out = subprocess.run(probe, env=env, cwd=ROOT, capture_output=True, text=True, check=False)
    logged = out.stdout + out.stderr
    assert out.returncode == 0, logged[-3000:]
    lines = [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]
    events = [line["message"] for line in lines if isinstance(line.get("message"), dict)]
    assert len(events) >= 2, logged[-3000:]  # both events were logged whole
    assert all(e["requestContext"]["requestId"] for e in events)  # their shape kept
    assert any(line.get("message") == "raised" for line in lines)
    assert "eyJ" not in logged, [line for line in logged.splitlines() if "eyJ" in line][:3]
    assert token.split(".")[2] not in logged  # nor the signature alone


CORRELATION_PROBE = """
import json, sys
from types import SimpleNamespace

token = sys.argv[1]
context = SimpleNamespace(function_name="probe", memory_limit_in_mb=128, aws_request_id="r-1",
                          invoked_function_arn="arn:aws:lambda:us-east-1:1:function:probe")
event = json.loads(open("events/api_get_document.json").read().replace("{{token}}", token))
import app
for request_id in ("corr-1", "corr-2"):
    event["requestContext"]["requestId"] = request_id
    app.handler(event, context)
"""


def test_each_requests_log_lines_carry_its_api_gateway_request_id() -> None:
    """The correlation id is API Gateway's request id (requestContext.requestId),
    set anew for every invocation (app.py reads it with a plain lookup)."""
    env = {
        **os.environ,
        "POWERTOOLS_LOG_LEVEL": "DEBUG",
        "DOCS_JWT_SECRET": JWT_SECRET,
        "REDIS_URL": "redis://127.0.0.1:1/0",
    }
    probe = [sys.executable, "-c", CORRELATION_PROBE, make_token(org="probe")]
    out = subprocess.run(probe, env=env, cwd=ROOT, capture_output=True, text=True, check=False)
    assert out.returncode == 0, (out.stdout + out.stderr)[-3000:]
    lines = [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]
    requests = [line for line in lines if line.get("message") == "request"]
    assert [line.get("correlation_id") for line in requests] == ["corr-1", "corr-2"], lines[-4:]
