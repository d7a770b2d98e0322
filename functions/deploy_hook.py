"""CodeDeploy hook of every function's deployment (``CodeDeployHook_*``, template.yaml).

Each code function's ``DeploymentPreference`` names it as its PreTraffic and
PostTraffic hook.  CodeDeploy calls it with a deployment id; the deployment's
target (``ListDeploymentTargets``/``GetDeploymentTarget``) says which function,
which new version, and which lifecycle event is in progress.

Before traffic (``BeforeAllowTraffic``), for every function:

1. runs the pending migrations: it invokes ``MigrateFunction``'s new version
   (functions/migrate.py, the only function with the migration login) and waits
   for its answer as long as MigrateFunction may run (``MIGRATE_FUNCTION_TIMEOUT``,
   its Timeout, plus a margin), with no automatic retry: a retry while the first
   invocation still runs would be throttled (reserved concurrency 1) and fail a
   deploy whose migration succeeds.  Only a throttled invocation, which never
   started (another deployment's hook is migrating), is asked again, until the
   hook's own deadline.  So no function's new version takes traffic before the
   schema is migrated, whatever order CloudFormation updates the aliases in.  The
   migrations are expand-only (docs/operations.md): the old versions keep working;
2. checks the new version, invoked directly (the alias still points at the old
   one): the API gets ``GET /health`` and the authenticated smoke suite
   (functions/smoke.py); every other function the load probe (it imports and
   answers, doing no work).

After traffic (``AfterAllowTraffic``) the same checks run against the alias.

It reports ``Succeeded`` or ``Failed`` to CodeDeploy (``PutLifecycleEventHookExecutionStatus``)
always, also when a step raised: an unreported hook holds the deployment until
CodeDeploy's one-hour timeout.  ``Failed`` stops the deployment (before traffic:
before the first request reaches the new version) and CloudFormation rolls the
stack back.  The hook runs outside the VPC: it only calls AWS APIs.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from chalicelib.observability import SMOKE_PROBE, lambda_handler, logger

# GET /health as API Gateway sends it (built here: events/ is not in the Lambda bundle;
# tests/unit/test_deploy_hook.py keeps it equal to events/api_get_health.json's essentials)
SMOKE_EVENT: dict[str, Any] = {
    "resource": "/health",
    "path": "/health",
    "httpMethod": "GET",
    "headers": {"User-Agent": "docs-deploy-hook"},
    "multiValueHeaders": {"User-Agent": ["docs-deploy-hook"]},
    "queryStringParameters": None,
    "multiValueQueryStringParameters": None,
    "pathParameters": None,
    "stageVariables": None,
    "body": None,
    "isBase64Encoded": False,
    "requestContext": {
        "resourcePath": "/health",
        "httpMethod": "GET",
        "path": "/health",
        "requestId": "deploy-hook-smoke-test",
        "identity": {"sourceIp": "127.0.0.1", "userAgent": "docs-deploy-hook"},
    },
}
SUCCEEDED, FAILED = "Succeeded", "Failed"
PRE, POST = "BeforeAllowTraffic", "AfterAllowTraffic"

# Seconds.  Lambda answers an invocation that hit its Timeout shortly after it; the
# hook keeps REPORT_RESERVE_S of its own time to report to CodeDeploy, whatever happens.
READ_MARGIN_S = 10.0
REPORT_RESERVE_S = 15.0
SMOKE_READ_TIMEOUT_S = 40.0  # ApiFunction's Timeout (29 s) and a margin
SMOKE_BUDGET_S = 120.0  # all the smoke tests of one deployment
THROTTLED_PAUSE_S = 5.0
MIGRATE_TIMEOUT_DEFAULT_S = 300.0  # template.yaml: MigrateFunction's Timeout
_sleep = time.sleep


class StepFailed(Exception):
    """A step of the hook failed; the message says which and why (it is logged)."""


def _lambda(read_timeout: float) -> Any:
    """A Lambda client that waits ``read_timeout`` seconds for an answer and never
    retries by itself (an invocation that timed out on our side may still be running).
    Made per call: the hook runs once per deployment."""
    import boto3  # lazy: only this function pays for it at cold start
    from botocore.config import Config

    config = Config(
        read_timeout=read_timeout, connect_timeout=10, retries={"total_max_attempts": 1}
    )
    return boto3.client("lambda", config=config)


def _codedeploy() -> Any:
    import boto3

    return boto3.client("codedeploy")


def _invoke(client: Any, function: str, payload: dict[str, Any]) -> dict[str, Any]:
    """Invoke ``function`` synchronously; its JSON answer, or StepFailed."""
    response = client.invoke(
        FunctionName=function,
        InvocationType="RequestResponse",
        Payload=json.dumps(payload).encode(),
    )
    body = response["Payload"].read()
    if response.get("FunctionError"):
        raise StepFailed(f"{function} failed: {body[:2000]!r}")
    try:
        answer = json.loads(body or b"null")
    except ValueError:
        raise StepFailed(f"{function} answered no JSON: {body[:200]!r}") from None
    if not isinstance(answer, dict):
        raise StepFailed(f"{function} answered {answer!r}, not an object")
    return answer


def migrate_timeout() -> float:
    """How long MigrateFunction may run (its Timeout, seconds)."""
    return float(os.environ.get("MIGRATE_FUNCTION_TIMEOUT") or MIGRATE_TIMEOUT_DEFAULT_S)


def run_migrations(function: str, deadline: float) -> list[str]:
    """The migrations MigrateFunction applied now (raises StepFailed when it failed).

    ``deadline`` is a ``time.monotonic()`` the call must not wait past."""
    from botocore.exceptions import ClientError

    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise StepFailed(f"{function} was throttled until the hook ran out of time")
        client = _lambda(read_timeout=min(migrate_timeout() + READ_MARGIN_S, left))
        try:
            answer = _invoke(client, function, {})
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "TooManyRequestsException":
                raise
            # another deployment's hook is migrating; this invocation never started
            _sleep(min(THROTTLED_PAUSE_S, left))
            continue
        applied = answer.get("applied")
        if not isinstance(applied, list):
            raise StepFailed(f"{function} did not say what it applied")
        return [str(name) for name in applied]


def smoke_test(
    client: Any, version_arn: str, event: dict[str, Any] = SMOKE_EVENT
) -> dict[str, Any]:
    """``GET /health`` on the new version: 200 and PostgreSQL ok, else StepFailed."""
    answer = _invoke(client, version_arn, event)
    status = answer.get("statusCode")
    try:
        body = json.loads(answer.get("body") or "null")
    except ValueError:
        body = None
    checks = body.get("checks") if isinstance(body, dict) else None
    postgres = checks.get("postgres") if isinstance(checks, dict) else None
    if status != 200 or postgres != "ok":
        raise StepFailed(f"GET /health on {version_arn}: {status}, postgres {postgres!r}")
    return body if isinstance(body, dict) else {}


@dataclass(frozen=True)
class Target:
    """What a deployment moves: ``function``'s ``alias`` to ``version``; ``phase`` is
    the lifecycle event this invocation serves (BeforeAllowTraffic or AfterAllowTraffic)."""

    function: str
    alias: str
    version: str
    phase: str

    @property
    def new_version(self) -> str:
        return f"{self.function}:{self.version}"

    @property
    def live(self) -> str:
        return f"{self.function}:{self.alias}"


def deployment_target(codedeploy: Any, deployment_id: str) -> Target:
    """The function, versions and current lifecycle event of a Lambda deployment."""
    (target_id,) = codedeploy.list_deployment_targets(deploymentId=deployment_id)["targetIds"]
    found = codedeploy.get_deployment_target(deploymentId=deployment_id, targetId=target_id)
    target = found["deploymentTarget"]["lambdaTarget"]
    info = target["lambdaFunctionInfo"]
    running = [
        e["lifecycleEventName"]
        for e in target.get("lifecycleEvents", [])
        if e.get("status") == "InProgress" and e.get("lifecycleEventName") in (PRE, POST)
    ]
    if len(running) != 1:
        raise StepFailed(f"deployment {deployment_id}: no hook in progress ({running!r})")
    return Target(
        info["functionName"], info["functionAlias"], str(info["targetVersion"]), running[0]
    )


def _smoke_client(deadline: float) -> Any:
    """A client for one check, waiting at most until ``deadline``."""
    return _lambda(read_timeout=max(1.0, min(SMOKE_READ_TIMEOUT_S, deadline - time.monotonic())))


def load_check(client: Any, qualified: str) -> None:
    """A worker's new version starts: it imports and answers the load probe
    (chalicelib.observability.lambda_handler), doing no work."""
    answer = _invoke(client, qualified, {SMOKE_PROBE: "load"})
    if answer != {"smoke": "ok"}:
        raise StepFailed(f"{qualified} answered the load probe with {answer!r}")


def api_suite(qualified: str, deadline: float) -> list[str]:
    """GET /health, then the authenticated suite (functions/smoke.py) on ``qualified``."""
    from functions.smoke import Caller, SmokeFailed, run_suite

    def client() -> Any:
        return _lambda(
            read_timeout=max(1.0, min(SMOKE_READ_TIMEOUT_S, deadline - time.monotonic()))
        )

    smoke_test(client(), qualified)
    caller = Caller(
        issuer=os.environ["DOCS_JWT_ISSUER"],
        audience=os.environ["DOCS_JWT_AUDIENCE"],
        agent="docs-deploy-hook",
    )
    try:
        return run_suite(lambda event: _invoke(client(), qualified, event), caller)
    except SmokeFailed as exc:
        raise StepFailed(f"smoke suite on {qualified}: {exc}") from None


def check(target: Target, deadline: float) -> dict[str, Any]:
    """What this lifecycle event checks: before traffic, the new version directly;
    after it, the alias (which now points at the new version)."""
    qualified = target.new_version if target.phase == PRE else target.live
    smoke_deadline = min(deadline, time.monotonic() + SMOKE_BUDGET_S)
    if target.function == os.environ.get("API_FUNCTION_NAME"):
        return {"suite": api_suite(qualified, smoke_deadline)}
    if target.function == os.environ.get("MIGRATE_FUNCTION_NAME"):
        return {}  # its check is the migration run that came first
    client = _lambda(
        read_timeout=max(1.0, min(SMOKE_READ_TIMEOUT_S, smoke_deadline - time.monotonic()))
    )
    load_check(client, qualified)
    return {"load": "ok"}


def report(client: Any, event: dict[str, Any], status: str) -> None:
    client.put_lifecycle_event_hook_execution_status(
        deploymentId=event["DeploymentId"],
        lifecycleEventHookExecutionId=event["LifecycleEventHookExecutionId"],
        status=status,
    )


@lambda_handler
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    status, outcome = FAILED, dict[str, Any]()
    deadline = time.monotonic() + context.get_remaining_time_in_millis() / 1000 - REPORT_RESERVE_S
    try:
        target = deployment_target(_codedeploy(), event["DeploymentId"])
        outcome = {"function": target.function, "version": target.version, "phase": target.phase}
        if target.phase == PRE:
            applied = run_migrations(os.environ["MIGRATE_FUNCTION_ARN"], deadline)
            logger.info("migrations applied", extra={"applied": applied})
            outcome["applied"] = applied
        outcome.update(check(target, deadline))
        logger.info("deployment checks passed", extra=outcome)
        status = SUCCEEDED
    except StepFailed as exc:
        logger.error("deployment hook failed", extra={"reason": str(exc), **outcome})
        outcome["reason"] = str(exc)
    except Exception as exc:  # any failure must still be reported to CodeDeploy
        logger.exception("deployment hook raised")
        outcome["reason"] = f"{type(exc).__name__}: {exc}"
    finally:
        report(_codedeploy(), event, status)
    return {"status": status, **outcome}
