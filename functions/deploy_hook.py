"""CodeDeploy pre-traffic hook of ApiFunction (``CodeDeployHook_*``, template.yaml).

CodeDeploy calls it once the new version of the API is published and before any
traffic moves to it.  It

1. runs the pending migrations: it invokes ``MigrateFunction`` (functions/migrate.py,
   the only function with the migration login) and waits for its answer; the
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


class StepFailed(Exception):
    """A step of the hook failed; the message says which and why (it is logged)."""


def _lambda() -> Any:
    import boto3  # lazy: only this function pays for it at cold start

    return boto3.client("lambda")


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


def run_migrations(client: Any, function: str) -> list[str]:
    """The migrations MigrateFunction applied now (raises StepFailed when it failed)."""
    applied = _invoke(client, function, {}).get("applied")
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
    try:
        client = _lambda()
        applied = run_migrations(client, os.environ["MIGRATE_FUNCTION_ARN"])
        logger.info("migrations applied", extra={"applied": applied})
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
