"""functions/deploy_hook.py with botocore's Stubber: no AWS, no network.

The hook must report Succeeded only when the migrations ran and the deployment's
new version passes its checks (the API: GET /health and the authenticated suite;
a worker: the load probe), and must report *something* in every case (an
unreported hook stalls the deployment for an hour).
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

MIGRATE = "arn:aws:lambda:us-east-1:123456789012:function:docs-MigrateFunction:3"
API, WORKER = "docs-ApiFunction-abc", "docs-SyncSearchFunction-def"
TARGET = f"{API}:7"
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

    def deployment(self, function: str = API, phase: str = "BeforeAllowTraffic") -> None:
        """The deployment's target: ``function``'s alias live, version 6 -> 7."""
        self.reports.add_response(
            "list_deployment_targets", {"targetIds": [f"{function}:live"]},
            {"deploymentId": EVENT["DeploymentId"]},
        )  # fmt: skip
        events = [
            {"lifecycleEventName": name, "status": "InProgress" if name == phase else "Pending"}
            for name in ("BeforeAllowTraffic", "AllowTraffic", "AfterAllowTraffic")
        ]
        info = {"functionName": function, "functionAlias": "live",
                "currentVersion": "6", "targetVersion": "7"}  # fmt: skip
        self.reports.add_response(
            "get_deployment_target",
            {"deploymentTarget": {"deploymentTargetType": "LambdaTarget",
                                  "lambdaTarget": {"lambdaFunctionInfo": info,
                                                   "lifecycleEvents": events}}},
            {"deploymentId": EVENT["DeploymentId"], "targetId": f"{function}:live"},
        )  # fmt: skip

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
    monkeypatch.setenv("API_FUNCTION_NAME", API)
    monkeypatch.setenv("MIGRATE_FUNCTION_NAME", "docs-MigrateFunction-ghi")
    monkeypatch.setenv("DOCS_JWT_ISSUER", "https://issuer.test")
    monkeypatch.setenv("DOCS_JWT_AUDIENCE", "client")
    s = Stubs()
    monkeypatch.setattr(deploy_hook, "_lambda", lambda **_: s.lambda_)
    monkeypatch.setattr(deploy_hook, "_codedeploy", lambda: s.codedeploy)
    with s.invokes, s.reports:
        yield s
        s.invokes.assert_no_pending_responses()
        s.reports.assert_no_pending_responses()  # the status was reported, exactly once


def _run() -> dict[str, Any]:
    return deploy_hook.handler(dict(EVENT), LambdaContext.new())


@pytest.fixture
def suite(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The API's checks stand in (functions/smoke.py is tested against the real app):
    records what it was run on."""
    ran: list[str] = []

    def fake(qualified: str, deadline: float) -> list[str]:
        ran.append(qualified)
        return ["create", "clean-up"]

    monkeypatch.setattr(deploy_hook, "api_suite", fake)
    return ran


def test_api_before_traffic_migrates_then_runs_the_suite_on_the_new_version(
    stubs: Stubs, suite: list[str]
) -> None:
    stubs.deployment(API)
    stubs.invoke(MIGRATE, {"applied": ["0007_new_column"]})
    stubs.expect_report("Succeeded")
    result = _run()
    assert result["status"] == "Succeeded"
    assert result["applied"] == ["0007_new_column"]
    assert suite == [f"{API}:7"]  # the new version, not the alias


def test_api_after_traffic_runs_the_suite_on_the_alias_and_migrates_nothing(
    stubs: Stubs, suite: list[str]
) -> None:
    stubs.deployment(API, phase="AfterAllowTraffic")
    stubs.expect_report("Succeeded")
    assert _run()["status"] == "Succeeded"
    assert suite == [f"{API}:live"]


@pytest.mark.parametrize(("phase", "qualified"), [("BeforeAllowTraffic", f"{WORKER}:7"),
                                                   ("AfterAllowTraffic", f"{WORKER}:live")])  # fmt: skip
def test_a_worker_gets_the_load_probe_after_the_migrations(
    stubs: Stubs, phase: str, qualified: str
) -> None:
    stubs.deployment(WORKER, phase=phase)
    if phase == "BeforeAllowTraffic":
        stubs.invoke(MIGRATE, {"applied": []})
    stubs.invokes.add_response(
        "invoke", {"StatusCode": 200, "Payload": _payload({"smoke": "ok"})},
        {"FunctionName": qualified, "InvocationType": "RequestResponse",
         "Payload": json.dumps({"docs_smoke": "load"}).encode()},
    )  # fmt: skip
    stubs.expect_report("Succeeded")
    assert _run()["status"] == "Succeeded"


def test_a_worker_that_does_not_start_fails(stubs: Stubs) -> None:
    stubs.deployment(WORKER)
    stubs.invoke(MIGRATE, {"applied": []})
    stubs.invoke(f"{WORKER}:7", {"errorMessage": "No module named x"}, error="Unhandled")
    stubs.expect_report("Failed")
    assert "No module named" in _run()["reason"]


def test_the_load_probe_is_answered_by_every_handlers_entry_point() -> None:
    from functions import purge

    assert purge.handler({"docs_smoke": "load"}, LambdaContext.new()) == {"smoke": "ok"}


def test_failed_migration_reports_failed_and_skips_the_checks(
    stubs: Stubs, suite: list[str]
) -> None:
    stubs.deployment(API)
    stubs.invoke(MIGRATE, {"errorMessage": "relation exists", "errorType": "DuplicateTable"},
                 error="Unhandled")  # fmt: skip
    stubs.expect_report("Failed")
    result = _run()
    assert result["status"] == "Failed"
    assert "DuplicateTable" in result["reason"]
    assert suite == []


def test_migration_without_an_answer_reports_failed(stubs: Stubs) -> None:
    stubs.deployment(API)
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
def test_failed_health_check_reports_failed(stubs: Stubs, answer: dict[str, Any]) -> None:
    stubs.deployment(API)
    stubs.invoke(MIGRATE, {"applied": []})
    stubs.invoke(TARGET, answer)
    stubs.expect_report("Failed")
    assert _run()["status"] == "Failed"


def test_a_failing_suite_step_reports_failed_naming_it(stubs: Stubs) -> None:
    stubs.deployment(API)
    stubs.invoke(MIGRATE, {"applied": []})
    stubs.invoke(TARGET, _health())
    stubs.invoke(TARGET, {"statusCode": 500, "headers": {}, "body": "{}"})  # POST /documents
    stubs.expect_report("Failed")
    sent: list[dict[str, Any]] = []
    stubs.lambda_.meta.events.register(
        "before-parameter-build.lambda.Invoke",
        lambda params, **_: sent.append(json.loads(params["Payload"])),
    )
    result = _run()
    assert result["status"] == "Failed"
    assert "create" in result["reason"]
    create = sent[2]
    assert (create["httpMethod"], create["path"]) == ("POST", "/documents")
    claims = create["requestContext"]["authorizer"]["claims"]
    assert (claims["org"], claims["iss"], claims["aud"]) == (
        "docs-canary",
        "https://issuer.test",
        "client",
    )


def test_new_version_crashing_reports_failed(stubs: Stubs) -> None:
    stubs.deployment(API)
    stubs.invoke(MIGRATE, {"applied": []})
    stubs.invoke(TARGET, {"errorMessage": "import error"}, error="Unhandled")
    stubs.expect_report("Failed")
    assert _run()["status"] == "Failed"


def test_an_api_error_is_still_reported(stubs: Stubs) -> None:
    """A step that raises something unexpected (here AccessDenied on Invoke)."""
    stubs.deployment(API)
    stubs.invokes.add_client_error("invoke", "AccessDeniedException", http_status_code=403)
    stubs.expect_report("Failed")
    result = _run()
    assert result["status"] == "Failed"
    assert "AccessDenied" in result["reason"]


def test_an_unreadable_deployment_is_still_reported(stubs: Stubs) -> None:
    stubs.reports.add_client_error("list_deployment_targets", "DeploymentDoesNotExistException")
    stubs.expect_report("Failed")
    assert _run()["status"] == "Failed"


def test_missing_configuration_is_still_reported(
    stubs: Stubs, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MIGRATE_FUNCTION_ARN")
    stubs.deployment(API)
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
