"""functions/canary.py: a failed step is logged and counted as no success, never raised
(CanaryAlarm reads CanarySucceeded; the suite itself: tests/integration/test_smoke_suite.py)."""

from __future__ import annotations

from typing import Any

import pytest

from devtools.events import LambdaContext
from functions import canary
from functions.smoke import Caller, SmokeFailed


@pytest.fixture(autouse=True)
def _env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("API_FUNCTION_ALIAS_ARN", "arn:aws:lambda:us-east-1:1:function:api:live")
    monkeypatch.setenv("DOCS_JWT_ISSUER", "https://issuer.test")
    monkeypatch.setenv("DOCS_JWT_AUDIENCE", "client")


def test_a_passing_run_counts_a_success(monkeypatch: pytest.MonkeyPatch) -> None:
    counted: list[str] = []
    seen: list[Caller] = []

    def suite(invoke: Any, caller: Caller) -> list[str]:
        seen.append(caller)
        return ["create", "clean-up"]

    monkeypatch.setattr(canary, "run_suite", suite)
    monkeypatch.setattr(canary, "count", lambda name, value=1: counted.append(name))
    result = canary.handler({}, LambdaContext.new())
    assert result["ok"] is True
    assert counted == ["CanarySucceeded"]
    assert (seen[0].issuer, seen[0].audience, seen[0].org) == (
        "https://issuer.test",
        "client",
        "docs-canary",
    )


def test_a_failing_step_counts_nothing_and_says_which(monkeypatch: pytest.MonkeyPatch) -> None:
    counted: list[str] = []

    def suite(invoke: Any, caller: Caller) -> list[str]:
        raise SmokeFailed("search", "POST /search answered 503, not 200")

    monkeypatch.setattr(canary, "run_suite", suite)
    monkeypatch.setattr(canary, "count", lambda name, value=1: counted.append(name))
    result = canary.handler({}, LambdaContext.new())
    assert (result["ok"], result["step"]) == (False, "search")
    assert counted == []
