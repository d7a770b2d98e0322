"""The fault campaign: every registered fault, in turn, during a mixed load.

For each fault (``registry.FAULTS``; the entries live in ``processes.py``,
``deliveries.py``, ``realtime.py`` and ``webhooks.py``): start a load in the fault's own org,
wait until it runs, inject the fault (which brings the service back), check
the load goes on after it, stop the load, and run the checks (``Campaign.verify``).  Statuses
a client may see: 2xx, 404 (a read of a document its writer deleted), 412 (a
write after an unknown outcome), and 503 only while PostgreSQL is down, always
as problem+json with Retry-After; no read returns a version older than a write
acknowledged before the read was sent.
``-s`` is not needed: the table of faults survived is in the terminal summary
(``tests/summaries.py``, xdist runs included).
"""

from __future__ import annotations

import time

import pytest

from tests.faults import deliveries, processes, realtime, webhooks  # noqa: F401 - they register

# isort: split
from tests.faults import failover  # noqa: F401 - last: the campaign goes on on the standby
from tests.faults.registry import FAULTS, Fault
from tests.faults.stack import Campaign
from tests.polling import poll
from tests.summaries import summary_line

pytestmark = [pytest.mark.faults, pytest.mark.timeout(240)]
ALWAYS = {200, 201, 204, 404, 412}
SECTION = "fault campaign: faults survived"
HEADERS = (
    "after each: every acknowledged write present, PostgreSQL = cache = index (version of every "
    "document), outbox drained, no search dead letters, real-time cursor at the outbox head, "
    "subscribers saw every final version ('checked': documents checked after it)",
    f"{'fault':<38} {'s':>5} {'ops':>5} {'acked':>5}  {'statuses':<30} {'checked':>5}  notes",
)
DURING = {"postgres: crash stop, restart": {503}, "failover: sync standby promoted": {503}}


@pytest.mark.parametrize("fault", FAULTS, ids=[f.name.split(":")[0] for f in FAULTS])
def test_fault_survived(campaign: Campaign, fault: Fault, request: pytest.FixtureRequest) -> None:
    org = "f-" + fault.name.split(":")[0].replace(" ", "-")
    started = time.monotonic()
    load = campaign.load(org, seed=len(campaign.orgs))
    try:
        assert poll(lambda: load.acked_writes >= 10, timeout_s=30), "the load is running"
        notes = fault.inject(campaign, load)
        after = load.acked_writes
        assert poll(lambda: load.acked_writes >= after + 10, timeout_s=60), (
            "writes are acknowledged again after the fault"
        )
    finally:
        load.finish()
    campaign.keep(org, load)
    seen = set(load.statuses)
    assert seen <= ALWAYS | DURING.get(fault.name, set()), dict(load.statuses)
    assert not load.bad_failures, load.bad_failures[:5]  # every failure: 503 problem+json
    assert not load.stale_reads, load.stale_reads[:5]  # never older than an acknowledged write
    checked = campaign.verify()
    statuses = " ".join(f"{s}x{n}" for s, n in sorted(load.statuses.items()))
    seconds = round(time.monotonic() - started, 1)
    notes = ", ".join(f"{k} {v}" for k, v in notes.items())
    for header in HEADERS:
        summary_line(request, SECTION, header, header=True)
    summary_line(
        request,
        SECTION,
        f"{fault.name:<38} {seconds:>5} {load.ops:>5} {len(load.acks):>5}  {statuses:<30} "
        f"{checked.get('docs', 0):>5}  {notes}",
    )
