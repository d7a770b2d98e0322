"""A caller cannot switch a feature on for itself: flags are evaluated with the org and
user of the verified token only, never with what a request names (docs/security.md)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from chalicelib import bootstrap
from tests.conftest import Invoker, make_token

pytestmark = pytest.mark.integration


@pytest.fixture
def realtime_only_for(settings: Any, tmp_path: Path) -> Iterator[str]:
    """``realtime`` off for everyone but one org (whose id is yielded)."""
    allowed = f"org-{uuid.uuid4().hex[:8]}"
    rule = {"when_match": True,
            "conditions": [{"action": "EQUALS", "key": "org", "value": allowed}]}  # fmt: skip
    path = tmp_path / "flags.json"
    path.write_text(json.dumps({"realtime": {"default": False, "rules": {"one org": rule}}}))
    own = settings.model_copy(
        update={"feature_flags_store": "file", "feature_flags_source": str(path)}
    )
    container: Any = bootstrap.build(own)
    bootstrap.set_container(container)
    yield allowed
    bootstrap.set_container(None)
    container.close()


def test_naming_another_org_in_the_request_does_not_turn_a_flag_on(realtime_only_for: str) -> None:
    api = Invoker(make_token(org=f"org-{uuid.uuid4().hex[:8]}", sub="mallory", roles=("admin",)))
    attempts = [
        api("GET", f"/changes?feed=eventsource&org={realtime_only_for}"),
        api(
            "GET",
            "/changes?feed=eventsource",
            headers={"X-Org": realtime_only_for, "X-Tenant": realtime_only_for},
        ),
        api("GET", f"/changes?feed=eventsource&user={realtime_only_for}"),
    ]
    for answer in attempts:
        assert answer.status == 403, answer
        assert answer.json()["type"].endswith("/problems/feature-disabled")
    allowed = Invoker(make_token(org=realtime_only_for, roles=("reader",)))
    assert allowed("GET", "/changes?feed=eventsource").status == 200
