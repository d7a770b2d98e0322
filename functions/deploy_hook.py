"""CodeDeploy pre-traffic hook of ApiFunction (``CodeDeployHook_*``, template.yaml).

CodeDeploy calls it once the new version of the API is published and before any
traffic moves to it.  It

1. runs the pending migrations: it invokes ``MigrateFunction`` (functions/migrate.py,
   the only function with the migration login) and waits for its answer as long as
   MigrateFunction may run (``MIGRATE_FUNCTION_TIMEOUT``, its Timeout, plus a
   margin), with no automatic retry: a retry while the first invocation still runs
   would be throttled (reserved concurrency 1) and fail a deploy whose migration
   succeeds.  Only a throttled invocation, which never started, is asked again
   (another deployment's hook is migrating), until the hook's own deadline.  The
   migrations are expand-only (docs/operations.md), so the old version, which still
   serves all the traffic, keeps working against the new schema;
2. smoke-tests the new version: it invokes that version (``TARGET_VERSION_ARN``,
   not the alias, which still points at the old one) with the API Gateway
   ``GET /health`` sample event (events/api_get_health.json) and wants a 200 whose
   ``checks.postgres`` is ``ok``;
3. reports ``Succeeded`` or ``Failed`` to CodeDeploy
   (``PutLifecycleEventHookExecutionStatus``) — always, also when a step raised:
   an unreported hook holds the deployment until CodeDeploy's one-hour timeout.

``Failed`` stops the deployment before the first request reaches the new version,
and CloudFormation rolls the stack back.  The hook itself runs outside the VPC: it
only calls AWS APIs (Lambda, CodeDeploy).
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from chalicelib.observability import lambda_handler, logger

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


def report(client: Any, event: dict[str, Any], status: str) -> None:
    client.put_lifecycle_event_hook_execution_status(
        deploymentId=event["DeploymentId"],
        lifecycleEventHookExecutionId=event["LifecycleEventHookExecutionId"],
        status=status,
    )


@lambda_handler
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    status, outcome = FAILED, {}
    deadline = time.monotonic() + context.get_remaining_time_in_millis() / 1000 - REPORT_RESERVE_S
    try:
        applied = run_migrations(os.environ["MIGRATE_FUNCTION_ARN"], deadline)
        logger.info("migrations applied", extra={"applied": applied})
        left = deadline - time.monotonic()
        client = _lambda(read_timeout=max(1.0, min(SMOKE_READ_TIMEOUT_S, left)))
        health = smoke_test(client, os.environ["TARGET_VERSION_ARN"])
        logger.info("smoke test passed", extra={"health": health})
        status, outcome = SUCCEEDED, {"applied": applied, "health": health}
    except StepFailed as exc:
        logger.error("pre-traffic hook failed", extra={"reason": str(exc)})
        outcome = {"reason": str(exc)}
    except Exception as exc:  # any failure must still be reported to CodeDeploy
        logger.exception("pre-traffic hook raised")
        outcome = {"reason": f"{type(exc).__name__}: {exc}"}
    finally:
        report(_codedeploy(), event, status)
    return {"status": status, **outcome}
