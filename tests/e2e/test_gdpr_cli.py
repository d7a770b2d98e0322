"""The GDPR commands of the local CLI against the running local server."""

from __future__ import annotations

import json
from urllib.parse import urlsplit

import pytest

from tests.e2e.test_local_cli import ROOT, cli_env, run_cli

pytestmark = pytest.mark.e2e


def test_purge_and_pii_reencrypt_run_against_the_local_stack(server: str) -> None:
    env = cli_env(ROOT / "var" / f"e2e-state-{urlsplit(server).port}.json")
    result = run_cli("purge", env=env)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert {"purged", "finished", "objects", "failed", "skipped"} <= set(report)
    assert report["failed"] == 0
    result = run_cli("pii-reencrypt", env=env)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"documents": 0, "rows": 0}  # no field declared
