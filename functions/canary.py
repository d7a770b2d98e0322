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

from chalicelib.observability import count, lambda_handler, logger, milliseconds
from functions.deploy_hook import SMOKE_READ_TIMEOUT_S, StepFailed, _invoke, _lambda
from functions.smoke import Caller, SmokeFailed, run_suite

_client: Any = None


def _api_client() -> Any:
    global _client  # noqa: PLW0603 - one client per process, made on first use
    if _client is None:
        _client = _lambda(read_timeout=SMOKE_READ_TIMEOUT_S)
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
        count("CanaryFailed")
        return {"ok": False, "step": step, "reason": str(exc)}
    count("CanarySucceeded")
    milliseconds("CanaryDuration", (time.perf_counter() - started) * 1000)
    return {"ok": True, "steps": steps}
