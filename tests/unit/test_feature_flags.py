"""Feature flags (adapters/feature_flags.py, domain/flags.py): Powertools' rules per org
and per user, the file store's cache, and defaults whenever the store fails."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from chalicelib.adapters.feature_flags import (
    FETCH_TIMEOUTS,
    FileStore,
    LastGood,
    PowertoolsFlags,
    build_flags,
)
from chalicelib.domain.errors import FeatureDisabled
from chalicelib.domain.flags import FLAGS, REALTIME, WEBHOOKS, default_of, require
from tests.unit.fakes import FakeFlags

RULES = {
    "webhooks": {
        "default": False,
        "rules": {
            "pilot orgs": {
                "when_match": True,
                "conditions": [{"action": "KEY_IN_VALUE", "key": "org", "value": ["a", "b"]}],
            },
            "one user of org c": {
                "when_match": True,
                "conditions": [
                    {"action": "EQUALS", "key": "org", "value": "c"},
                    {"action": "EQUALS", "key": "user", "value": "pilot"},
                ],
            },
        },
    },
    "realtime": {
        "default": True,
        "rules": {
            "not org x": {
                "when_match": False,
                "conditions": [{"action": "EQUALS", "key": "org", "value": "x"}],
            }
        },
    },
}


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _flags(path: Path, clock: Clock, max_age_s: float = 60) -> tuple[PowertoolsFlags, FileStore]:
    store = FileStore(path, max_age_s, clock)
    flags = PowertoolsFlags(lambda: store, retry_s=max_age_s)
    flags._flags().store.clock = clock  # type: ignore[attr-defined] # LastGood's retry clock
    return flags, store


@pytest.fixture
def doc(tmp_path: Path) -> Path:
    path = tmp_path / "flags.json"
    path.write_text(json.dumps(RULES))
    return path


def test_rules_decide_per_org_and_per_user(doc: Path) -> None:
    flags, _ = _flags(doc, Clock())
    assert flags.enabled(WEBHOOKS, org="a") and flags.enabled(WEBHOOKS, org="b", user="u")
    assert not flags.enabled(WEBHOOKS, org="z")
    assert flags.enabled(WEBHOOKS, org="c", user="pilot")
    assert not flags.enabled(WEBHOOKS, org="c", user="other")
    assert not flags.enabled(WEBHOOKS, org="d", user="pilot")  # the user of org c only
    assert flags.enabled(REALTIME, org="y") and not flags.enabled(REALTIME, org="x")


def test_a_flag_missing_from_the_document_answers_its_registry_default(tmp_path: Path) -> None:
    path = tmp_path / "flags.json"
    path.write_text(json.dumps({"webhooks": {"default": True}}))
    flags, _ = _flags(path, Clock())
    assert flags.enabled(WEBHOOKS, org="a") is True
    assert flags.enabled(REALTIME, org="a") is True  # not in the file: its default
    assert flags.enabled("share_notifications", org="a") is False


def test_an_unregistered_flag_is_a_programming_error(doc: Path) -> None:
    flags, _ = _flags(doc, Clock())
    with pytest.raises(KeyError, match=r"domain/flags\.py"):
        flags.enabled("no_such_flag", org="a")


def test_the_file_is_read_once_per_max_age(doc: Path) -> None:
    clock = Clock()
    flags, store = _flags(doc, clock, max_age_s=30)
    for _ in range(5):
        assert flags.enabled(WEBHOOKS, org="a")
    assert store.reads == 1
    doc.write_text(json.dumps({"webhooks": {"default": False}}))
    clock.now += 29
    assert flags.enabled(WEBHOOKS, org="a")  # still the cached document
    clock.now += 2
    assert not flags.enabled(WEBHOOKS, org="a")  # re-read after max_age
    assert store.reads == 2


def test_a_store_failure_gives_the_defaults_and_is_retried_after_max_age(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    counted: list[str] = []
    monkeypatch.setattr("chalicelib.adapters.feature_flags.count", counted.append)
    clock = Clock()
    path = tmp_path / "absent.json"
    flags, store = _flags(path, clock, max_age_s=30)
    for _ in range(3):
        assert flags.enabled(REALTIME, org="a") is True  # its default
        assert flags.enabled(WEBHOOKS, org="a") is False
    assert store.reads == 1 and counted == ["FeatureFlagsStoreFailed"]  # not once a request
    path.write_text(json.dumps({"webhooks": {"default": True}}))
    clock.now += 31
    assert flags.enabled(WEBHOOKS, org="a") is True


def test_after_a_failure_the_last_good_document_stays(doc: Path) -> None:
    clock = Clock()
    flags, _ = _flags(doc, clock, max_age_s=30)
    assert not flags.enabled(REALTIME, org="x")
    doc.write_text("{broken")
    clock.now += 31
    assert not flags.enabled(REALTIME, org="x")  # the rules read before, not the defaults
    assert flags.enabled(WEBHOOKS, org="a")


def test_a_document_powertools_rejects_gives_the_defaults(tmp_path: Path) -> None:
    path = tmp_path / "flags.json"
    path.write_text(json.dumps({"webhooks": {"default": "yes", "rules": "none"}}))
    flags, _ = _flags(path, Clock())
    assert flags.enabled(WEBHOOKS, org="a") is False


def test_appconfig_unreachable_gives_the_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    """AppConfig refusing (here: a stubbed AccessDenied, as a missing grant would)
    is a store failure: defaults, and no second call before max_age."""
    import boto3
    from aws_lambda_powertools.utilities.feature_flags import AppConfigStore
    from botocore.stub import Stubber

    client = boto3.client("appconfigdata", region_name="us-east-1", aws_access_key_id="k",
                          aws_secret_access_key="s")  # fmt: skip
    stub = Stubber(client)
    stub.add_client_error("start_configuration_session", "AccessDeniedException", "no", 403)
    stub.activate()
    store = AppConfigStore(
        environment="env", application="app", name="profile", max_age=60, boto3_client=client
    )
    flags = PowertoolsFlags(lambda: store, retry_s=60)
    assert flags.enabled(REALTIME, org="a") is True
    assert flags.enabled(WEBHOOKS, org="a") is False  # the stub has no second answer: not asked
    stub.assert_no_pending_responses()


def test_appconfig_is_read_with_short_timeouts(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in (("AWS_DEFAULT_REGION", "us-east-1"), ("AWS_ACCESS_KEY_ID", "k"),
                        ("AWS_SECRET_ACCESS_KEY", "s")):  # fmt: skip
        monkeypatch.setenv(name, value)
    flags = build_flags("appconfig", "docs-app/live/flags", 45)
    store = flags._flags().store.inner  # type: ignore[attr-defined]
    assert (store.application, store.environment, store.name) == ("docs-app", "live", "flags")
    assert store.cache_seconds == 45
    assert store.config.connect_timeout == FETCH_TIMEOUTS["connect_timeout"] == 1
    assert store.config.read_timeout == 1 and store.config.retries["total_max_attempts"] == 1


def test_the_committed_local_file_turns_every_flag_on() -> None:
    """The local stack (an empty DOCS_FEATURE_FLAGS_SOURCE) runs every feature."""
    flags = build_flags("file", "", 60)
    assert all(flags.enabled(name, org="acme", user="u") for name in FLAGS)


def test_last_good_starts_with_no_document() -> None:
    class Broken:
        def get_configuration(self) -> dict[str, Any]:
            raise OSError("down")

    assert LastGood(Broken(), 5).get_configuration() == {}


def test_require_raises_feature_disabled_naming_the_flag() -> None:
    fake = FakeFlags()
    fake.set(REALTIME, False, org="x")
    require(fake, REALTIME, org="y", user="u")
    with pytest.raises(FeatureDisabled) as refused:
        require(fake, REALTIME, org="x", user="u")
    assert refused.value.flag == REALTIME and "'realtime'" in refused.value.detail
    assert fake.asked == [(REALTIME, "y", "u"), (REALTIME, "x", "u")]


def test_the_registry_defaults() -> None:
    assert default_of(REALTIME) is True  # a kill switch for what ships
    assert {n for n, f in FLAGS.items() if not f.default} == {"webhooks", "share_notifications"}


def test_importing_the_app_leaves_powertools_feature_flags_for_first_use() -> None:
    """Cold start: ``import app`` and the other handlers do not import the flags
    (Powertools' feature_flags package imports boto3: ~0.2 s)."""
    code = (
        "import sys, app, functions.realtime, functions.purge; "
        "print(any('feature_flags' in m for m in sys.modules), 'boto3' in sys.modules)"
    )
    env = {**os.environ, "POWERTOOLS_TRACE_DISABLED": "true", "POWERTOOLS_METRICS_DISABLED": "true"}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True
    )
    assert out.stdout.split() == ["False", "False"]
