"""The synthetic canary: the authenticated smoke suite against the live API, every minute.

A schedule invokes it (template.yaml ``CanaryFunction``); it runs functions/smoke.py
against ``ApiFunction``'s alias ``live`` (``API_FUNCTION_ALIAS_ARN``), the version
users get, and counts ``CanarySucceeded`` (1 per passing run).  ``CanaryAlarm``
fires when a minute has no success, and treats a missing datapoint as breaching:
a total outage with no user traffic, a canary that stopped running or that cannot
reach the API all page someone.  It runs outside the VPC: it only calls Lambda's API.
"""

from __future__ import annotations

import os
import time
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from chalicelib.observability import count, lambda_handler, logger
from functions.deploy_hook import SMOKE_READ_TIMEOUT_S, StepFailed, _invoke
from functions.smoke import Caller, SmokeFailed, run_suite

_client: Any = None


def _api_client() -> Any:
    """One Lambda client per process, made on first use; no automatic retry (a step
    that timed out may have run, and the next minute is the retry)."""
    global _client  # noqa: PLW0603
    if _client is None:
        import boto3
        from botocore.config import Config

        config = Config(read_timeout=SMOKE_READ_TIMEOUT_S, connect_timeout=10,
                        retries={"total_max_attempts": 1})  # fmt: skip
        _client = boto3.client("lambda", config=config)
    return _client


@lambda_handler
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    target = os.environ["API_FUNCTION_ALIAS_ARN"]
    caller = Caller(
        issuer=os.environ["DOCS_JWT_ISSUER"],
        audience=os.environ["DOCS_JWT_AUDIENCE"],
        agent="docs-canary",
    )
    started = time.perf_counter()
    try:
        steps = run_suite(lambda e: _invoke(_api_client(), target, e), caller)
    except (SmokeFailed, StepFailed) as exc:  # a failed step, or the API function crashed
        step = getattr(exc, "step", "invoke")
        logger.error("canary failed", extra={"step": step, "reason": str(exc)})
        return {"ok": False, "step": step, "reason": str(exc)}
    count("CanarySucceeded")  # CanaryAlarm: a minute without it, a failure or silence
    ms = round((time.perf_counter() - started) * 1000)
    logger.info("canary passed", extra={"steps": len(steps), "ms": ms})
    return {"ok": True, "steps": steps, "ms": ms}
