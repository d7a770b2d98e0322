"""The campaign's stack: one per run, shared by every fault."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.faults.stack import Campaign


@pytest.fixture(scope="session")
def campaign() -> Iterator[Campaign]:
    running = Campaign.start()
    yield running
    running.stop()
