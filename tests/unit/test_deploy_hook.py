"""functions/deploy_hook.py with botocore's Stubber: no AWS, no network.

The hook must report Succeeded only when the migrations ran and the new version
answers GET /health with 200 and PostgreSQL ok, and must report *something* in
every case (an unreported hook stalls the deployment for an hour).
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.response import StreamingBody
from botocore.stub import ANY, Stubber

from devtools.events import LambdaContext
from functions import deploy_hook

MIGRATE = "arn:aws:lambda:us-east-1:123456789012:function:docs-MigrateFunction:live"
TARGET = "arn:aws:lambda:us-east-1:123456789012:function:docs-ApiFunction:7"
EVENT = {"DeploymentId": "d-ABCDEF123", "LifecycleEventHookExecutionId": "hook-exec-1"}


def _payload(value: Any) -> StreamingBody:
    raw = value if isinstance(value, bytes) else json.dumps(value).encode()
    return StreamingBody(io.BytesIO(raw), len(raw))


def _health(status: int = 200, postgres: str = "ok") -> dict[str, Any]:
    body = {"status": "ok", "checks": {"postgres": postgres, "redis": "ok"}}
    return {"statusCode": status, "headers": {}, "body": json.dumps(body)}


class Stubs:
    def __init__(self) -> None:
        self.lambda_ = boto3.client("lambda", region_name="us-east-1")
        self.codedeploy = boto3.client("codedeploy", region_name="us-east-1")
        self.invokes = Stubber(self.lambda_)
        self.reports = Stubber(self.codedeploy)

    def invoke(self, function: str, answer: Any, *, error: str | None = None) -> None:
        response: dict[str, Any] = {"StatusCode": 200, "Payload": _payload(answer)}
        if error:
            response["FunctionError"] = error
        self.invokes.add_response(
            "invoke",
            response,
            {"FunctionName": function, "InvocationType": "RequestResponse", "Payload": ANY},
        )

    def expect_report(self, status: str) -> None:
        self.reports.add_response(
            "put_lifecycle_event_hook_execution_status",
            {"lifecycleEventHookExecutionId": EVENT["LifecycleEventHookExecutionId"]},
            {
                "deploymentId": EVENT["DeploymentId"],
                "lifecycleEventHookExecutionId": EVENT["LifecycleEventHookExecutionId"],
                "status": status,
            },
        )


@pytest.fixture
def stubs(monkeypatch: pytest.MonkeyPatch) -> Iterator[Stubs]:
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(key, "testing")  # dummy: the Stubber answers every call
    monkeypatch.setenv("MIGRATE_FUNCTION_ARN", MIGRATE)
    monkeypatch.setenv("TARGET_VERSION_ARN", TARGET)
    s = Stubs()
    monkeypatch.setattr(deploy_hook, "_lambda", lambda **_: s.lambda_)
    monkeypatch.setattr(deploy_hook, "_codedeploy", lambda: s.codedeploy)
    with s.invokes, s.reports:
        yield s
        s.invokes.assert_no_pending_responses()
        s.reports.assert_no_pending_responses()  # the status was reported, exactly once


def _run() -> dict[str, Any]:
    return deploy_hook.handler(dict(EVENT), LambdaContext.new())


def test_migrations_then_smoke_then_succeeded(stubs: Stubs) -> None:
    stubs.invoke(MIGRATE, {"applied": ["0007_new_column"]})
    stubs.invoke(TARGET, _health())
    stubs.expect_report("Succeeded")
    result = _run()
    assert result["status"] == "Succeeded"
    assert result["applied"] == ["0007_new_column"]


def test_the_smoke_event_is_the_health_sample(stubs: Stubs) -> None:
    sent: list[dict[str, Any]] = []
    stubs.invokes.add_response("invoke", {"StatusCode": 200, "Payload": _payload({"applied": []})})
    stubs.invokes.add_response("invoke", {"StatusCode": 200, "Payload": _payload(_health())})
    stubs.expect_report("Succeeded")
    stubs.lambda_.meta.events.register(
        "before-parameter-build.lambda.Invoke",
        lambda params, **_: sent.append(json.loads(params["Payload"])),
    )
    assert _run()["status"] == "Succeeded"
    assert sent[0] == {}
    assert (sent[1]["httpMethod"], sent[1]["path"]) == ("GET", "/health")
    assert "Authorization" not in sent[1]["headers"]  # /health is public


def test_failed_migration_reports_failed_and_skips_the_smoke_test(stubs: Stubs) -> None:
    stubs.invoke(MIGRATE, {"errorMessage": "relation exists", "errorType": "DuplicateTable"},
                 error="Unhandled")  # fmt: skip
    stubs.expect_report("Failed")
    result = _run()
    assert result["status"] == "Failed"
    assert "DuplicateTable" in result["reason"]


def test_migration_without_an_answer_reports_failed(stubs: Stubs) -> None:
    stubs.invoke(MIGRATE, b"not json")
    stubs.expect_report("Failed")
    assert _run()["status"] == "Failed"


@pytest.mark.parametrize(
    "answer",
    [
        _health(status=503, postgres="down"),
        _health(status=200, postgres="down"),
        {"statusCode": 500, "body": "{}"},
        {"statusCode": 200, "body": "not json"},
    ],
)
def test_failed_smoke_test_reports_failed(stubs: Stubs, answer: dict[str, Any]) -> None:
    stubs.invoke(MIGRATE, {"applied": []})
    stubs.invoke(TARGET, answer)
    stubs.expect_report("Failed")
    assert _run()["status"] == "Failed"


def test_new_version_crashing_reports_failed(stubs: Stubs) -> None:
    stubs.invoke(MIGRATE, {"applied": []})
    stubs.invoke(TARGET, {"errorMessage": "import error"}, error="Unhandled")
    stubs.expect_report("Failed")
    assert _run()["status"] == "Failed"


def test_an_api_error_is_still_reported(stubs: Stubs) -> None:
    """A step that raises something unexpected (here AccessDenied on Invoke)."""
    stubs.invokes.add_client_error("invoke", "AccessDeniedException", http_status_code=403)
    stubs.expect_report("Failed")
    result = _run()
    assert result["status"] == "Failed"
    assert "AccessDenied" in result["reason"]


def test_missing_configuration_is_still_reported(
    stubs: Stubs, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TARGET_VERSION_ARN")
    stubs.invoke(MIGRATE, {"applied": []})
    stubs.expect_report("Failed")
    assert _run()["status"] == "Failed"


def test_the_built_in_smoke_event_matches_the_health_sample() -> None:
    import json
    from pathlib import Path

    from functions.deploy_hook import SMOKE_EVENT

    sample = json.loads(
        (Path(__file__).resolve().parents[2] / "events" / "api_get_health.json").read_text()
    )
    for key in ("resource", "httpMethod", "body", "pathParameters", "queryStringParameters"):
        assert SMOKE_EVENT[key] == sample[key], key
    context = SMOKE_EVENT["requestContext"]
    assert (context["resourcePath"], context["httpMethod"]) == (
        sample["requestContext"]["resourcePath"],
        sample["requestContext"]["httpMethod"],
    )


def test_the_hook_waits_as_long_as_the_migration_may_run() -> None:
    """The hook's read timeout is MigrateFunction's Timeout; its own Timeout leaves room
    for that, the smoke tests and the report; docs/operations.md states the result."""
    import re
    from pathlib import Path

    from tests.unit.test_template import _env, _setting, _template

    template = _template()
    migrate = _setting(template, "MigrateFunction", "Timeout")
    hook = _setting(template, "DeployHookFunction", "Timeout")
    assert float(_env(template, "DeployHookFunction")["MIGRATE_FUNCTION_TIMEOUT"]) == migrate
    assert migrate == deploy_hook.MIGRATE_TIMEOUT_DEFAULT_S
    budget = (
        migrate
        + deploy_hook.READ_MARGIN_S
        + deploy_hook.SMOKE_BUDGET_S
        + deploy_hook.REPORT_RESERVE_S
    )
    assert budget <= hook
    doc = (Path(__file__).resolve().parents[2] / "docs/operations.md").read_text()
    stated = re.search(r"longest migration a deploy tolerates is (\d+) s", doc)
    assert stated is not None
    assert int(stated.group(1)) == migrate
    assert f"`Timeout`\n({hook} s)" in doc or f"({hook} s)" in doc
