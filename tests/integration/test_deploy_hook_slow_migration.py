"""A migration longer than boto3's default read timeout still passes the deploy.

The pre-traffic hook invokes MigrateFunction (reserved concurrency 1) against a local
endpoint speaking Lambda's Invoke API (tests/lambda_stub.py).  The whole clock runs
SCALE times faster than Lambda's, so the scenario keeps its proportions: boto3's
default 60 s read timeout, a 75 s migration, MigrateFunction's 300 s Timeout, the
hook's 600 s, and botocore's retry back-off all shrink by the same factor.

With a client that gives up at 60 s and retries, the retry is throttled (the first
invocation is still running) and the deploy fails while the migration succeeds.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from typing import Any

import botocore.config
import botocore.endpoint
import pytest

from devtools.events import LambdaContext
from functions import deploy_hook
from tests.lambda_stub import LambdaStub, serve
from tests.polling import poll
from tests.unit.test_template import _setting, _template

pytestmark = pytest.mark.integration

SCALE = 50.0  # Lambda's seconds per test second
MIGRATE = "arn:aws:lambda:us-east-1:123456789012:function:docs-MigrateFunction:3"
WORKER = "docs-SyncSearchFunction-abc"
TARGET = f"{WORKER}:7"
EVENT = {"DeploymentId": "d-SLOW", "LifecycleEventHookExecutionId": "hook-exec-slow"}


class _ScaledTime:
    """``time`` for botocore's retry back-off, SCALE times faster."""

    def __getattr__(self, name: str) -> Any:
        return getattr(time, name)

    @staticmethod
    def sleep(seconds: float) -> None:
        time.sleep(seconds / SCALE)


@pytest.fixture
def stub(monkeypatch: pytest.MonkeyPatch) -> Iterator[LambdaStub]:
    template = _template()
    with serve() as lambda_stub:
        for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
            monkeypatch.setenv(key, "testing")
        monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
        monkeypatch.setenv("AWS_ENDPOINT_URL_LAMBDA", lambda_stub.url)
        monkeypatch.setenv("MIGRATE_FUNCTION_ARN", MIGRATE)
        timeout = _setting(template, "MigrateFunction", "Timeout")
        monkeypatch.setenv("MIGRATE_FUNCTION_TIMEOUT", str(timeout / SCALE))
        # boto3's defaults (60 s read timeout, its retries' back-off) on the scaled clock
        defaults = botocore.config.Config.OPTION_DEFAULTS
        monkeypatch.setitem(defaults, "read_timeout", defaults["read_timeout"] / SCALE)
        monkeypatch.setitem(defaults, "connect_timeout", defaults["connect_timeout"] / SCALE)
        monkeypatch.setattr(botocore.endpoint, "time", _ScaledTime())
        monkeypatch.setattr(deploy_hook, "_sleep", _ScaledTime.sleep)
        for margin in ("READ_MARGIN_S", "REPORT_RESERVE_S", "SMOKE_READ_TIMEOUT_S"):
            monkeypatch.setattr(deploy_hook, margin, getattr(deploy_hook, margin) / SCALE)
        yield lambda_stub


def _health(payload: dict[str, Any]) -> dict[str, Any]:
    """The worker's new version answering the load probe."""
    assert payload == {"docs_smoke": "load"}
    return {"smoke": "ok"}


def _migration(seconds: float) -> Any:
    """The migrate function: the first run applies one slow migration, later ones none."""
    done: list[str] = []

    def run(payload: dict[str, Any]) -> dict[str, Any]:
        if done:
            return {"applied": []}
        time.sleep(seconds / SCALE)
        done.append("0099_slow_backfill")
        return {"applied": list(done)}

    return run


class _CodeDeploy:
    """A deployment of WORKER before traffic, and what the hook reports."""

    def __init__(self) -> None:
        self.reported: list[dict[str, Any]] = []

    def list_deployment_targets(self, **params: Any) -> dict[str, Any]:
        return {"targetIds": [f"{WORKER}:live"]}

    def get_deployment_target(self, **params: Any) -> dict[str, Any]:
        info = {"functionName": WORKER, "functionAlias": "live", "targetVersion": "7"}
        events = [{"lifecycleEventName": "BeforeAllowTraffic", "status": "InProgress"}]
        target = {"lambdaFunctionInfo": info, "lifecycleEvents": events}
        return {"deploymentTarget": {"lambdaTarget": target}}

    def put_lifecycle_event_hook_execution_status(self, **params: Any) -> dict[str, Any]:
        self.reported.append(params)
        return {"lifecycleEventHookExecutionId": params["lifecycleEventHookExecutionId"]}


def _run_hook(monkeypatch: pytest.MonkeyPatch, hook_timeout_s: float) -> tuple[str, dict[str, Any]]:
    codedeploy = _CodeDeploy()
    monkeypatch.setattr(deploy_hook, "_codedeploy", lambda: codedeploy)
    context = LambdaContext.for_function(
        "CodeDeployHook_docs-pre-traffic", timeout_s=hook_timeout_s
    )
    result = deploy_hook.handler(dict(EVENT), context)
    (report,) = codedeploy.reported  # reported exactly once, whatever happened
    assert report["deploymentId"] == EVENT["DeploymentId"]
    return str(report["status"]), result


def test_a_75_s_migration_passes_the_deploy(
    stub: LambdaStub, monkeypatch: pytest.MonkeyPatch
) -> None:
    migrate = stub.add(MIGRATE, _migration(75), reserved_concurrency=1)
    api = stub.add(TARGET, _health)
    hook_timeout = _setting(_template(), "DeployHookFunction", "Timeout")
    status, result = _run_hook(monkeypatch, hook_timeout / SCALE)
    poll(lambda: migrate.finished, timeout_s=10)
    assert migrate.results[0] == {"applied": ["0099_slow_backfill"]}  # it succeeded either way
    assert (status, result.get("reason")) == ("Succeeded", None)
    assert result["applied"] == ["0099_slow_backfill"]
    assert (migrate.started, migrate.throttled) == (1, 0)  # one invocation, never retried
    assert api.started == 1


def test_a_migration_slower_than_its_timeout_fails_the_deploy(
    stub: LambdaStub, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Lambda ends the migration at its Timeout; the hook reports Failed (the stub
    answers as Lambda does: the function's error, not a hang)."""

    def killed(payload: dict[str, Any]) -> Any:
        time.sleep(float(os.environ["MIGRATE_FUNCTION_TIMEOUT"]))
        raise TimeoutError("Task timed out after 300.00 seconds")

    migrate = stub.add(MIGRATE, killed, reserved_concurrency=1)
    hook_timeout = _setting(_template(), "DeployHookFunction", "Timeout")
    status, result = _run_hook(monkeypatch, hook_timeout / SCALE)
    assert status == "Failed"
    assert "timed out" in result["reason"]
    assert migrate.started == 1


def test_a_hook_throttled_by_another_deployments_migration_waits_for_it(
    stub: LambdaStub, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two deployments' hooks at once: the second is throttled (reserved concurrency
    1), asks again once the first run ended, and finds nothing left to apply."""
    import threading

    migrate = stub.add(MIGRATE, _migration(75), reserved_concurrency=1)
    stub.add(TARGET, _health)
    first = threading.Thread(target=stub.invoke, args=(MIGRATE, {}))
    first.start()
    poll(lambda: migrate.started, timeout_s=5)
    hook_timeout = _setting(_template(), "DeployHookFunction", "Timeout")
    status, result = _run_hook(monkeypatch, hook_timeout / SCALE)
    first.join()
    assert status == "Succeeded"
    assert result["applied"] == []
    assert migrate.throttled >= 1 and migrate.started == 2
