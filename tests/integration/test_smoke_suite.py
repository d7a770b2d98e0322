"""functions/smoke.py against the API's own handler, with real PostgreSQL, Redis and
a search server: it passes on this code and fails on a broken route."""

from __future__ import annotations

import json
from typing import Any

import pytest

from devtools.events import LambdaContext
from functions.smoke import CANARY_ORG, Caller, SmokeFailed, api_event, run_suite

pytestmark = pytest.mark.integration
ISSUER, AUDIENCE = "https://issuer.smoke.test", "smoke-client"


@pytest.fixture
def trusted(search_container: Any) -> Any:
    """The API as deployed: it trusts the authorizer's claims of its issuer and audience."""
    search_container.settings = search_container.settings.model_copy(
        update={"trust_authorizer_claims": True, "jwt_issuer": ISSUER, "jwt_audience": AUDIENCE}
    )
    return search_container


def _handler(event: dict[str, Any]) -> dict[str, Any]:
    import app

    answer: dict[str, Any] = app.handler(event, LambdaContext.new())
    return answer


def test_the_suite_passes_on_this_code_and_cleans_up(trusted: Any) -> None:
    caller = Caller(issuer=ISSUER, audience=AUDIENCE)
    steps = run_suite(_handler, caller)
    assert steps == [
        "create", "read-miss", "read", "read-hit", "patch", "patch-stale", "search",
        "delete", "read-deleted", "restore", "read-restored", "clean-up",
    ]  # fmt: skip
    # nothing of the canary org is left readable
    listing = _handler(api_event(caller, "GET", "/documents"))
    assert listing["statusCode"] == 200
    assert json.loads(listing["body"])["items"] == []
    assert caller.org == CANARY_ORG


def test_a_second_run_passes_too(trusted: Any) -> None:
    """Every minute, for ever: each run makes its own document."""
    for _ in range(2):
        run_suite(_handler, Caller(issuer=ISSUER, audience=AUDIENCE))


def test_claims_of_another_issuer_fail_the_first_step(trusted: Any) -> None:
    with pytest.raises(SmokeFailed) as failed:
        run_suite(_handler, Caller(issuer="https://elsewhere.test", audience=AUDIENCE))
    assert failed.value.step == "create"


@pytest.mark.parametrize(
    ("route", "step"),
    [
        ("patch_document", "patch"),
        ("restore_document", "restore"),
        ("search", "search"),
    ],
)
def test_a_broken_route_fails_its_step(
    trusted: Any, monkeypatch: pytest.MonkeyPatch, route: str, step: str
) -> None:
    import app

    entries = [e for methods in app.app.routes.values() for e in methods.values()]
    entry = next(e for e in entries if e.view_name == route)

    def crash(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("a release that broke this route")

    monkeypatch.setattr(entry, "view_function", crash)
    with pytest.raises(SmokeFailed) as failed:
        run_suite(_handler, Caller(issuer=ISSUER, audience=AUDIENCE))
    assert failed.value.step == step


def test_a_cache_that_never_hits_fails_the_read_step(
    trusted: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(trusted.cache, "get", lambda *a, **k: None, raising=False)
    with pytest.raises(SmokeFailed) as failed:
        run_suite(_handler, Caller(issuer=ISSUER, audience=AUDIENCE))
    assert failed.value.step == "read-hit"
