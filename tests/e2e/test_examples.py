"""The README's Python client example runs, as written, against the local server."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import make_token

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]


def test_the_client_example_creates_changes_and_retries_on_412(server: str) -> None:
    env = {**os.environ, "DOCS_TOKEN": make_token(org="example", sub="alice")}
    result = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "client.py"), server],
        env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 0, (result.stdout, result.stderr)
    lines = result.stdout.splitlines()
    assert lines[0].startswith("created ") and lines[0].endswith("at version 1")
    assert lines[1] == "now version 3: 'Groceries' {'items': ['milk', 'bread']}"
