"""The campaign's table of faults: one entry per fault, run in order on one stack.

A fault is a function ``inject(campaign, load) -> notes``: it breaks something
while ``load`` (a ``MixedLoad`` in the fault's own org) runs, brings it back,
and returns notes for the summary table (the numbers it saw).  The campaign
(``test_campaign.py``) then checks, for every fault alike, that the load went
on after the fault, and ``Campaign.verify``: every acknowledged write present,
PostgreSQL, the cache and the index agree, the outbox drained, no search dead
letters.  A fault that uses a queue checks its own DLQ (only the poison it
injected).

Adding a fault is one decorated function in any module imported by
``test_campaign.py`` (``realtime.py`` is a short one)::

    @fault("realtime: kill -9 the fan-out", "SIGKILL the real-time process mid-load; ...")
    def realtime_killed(campaign: Campaign, load: MixedLoad) -> Notes:
        ...
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

Notes = dict[str, Any]
Inject = Callable[[Any, Any], Notes]


@dataclass(frozen=True)
class Fault:
    name: str
    injected: str  # what is done, one line for the table
    inject: Inject


FAULTS: list[Fault] = []


def fault(name: str, injected: str) -> Callable[[Inject], Inject]:
    def register(fn: Inject) -> Inject:
        if any(f.name == name for f in FAULTS):
            raise ValueError(f"fault {name!r} is registered twice")
        FAULTS.append(Fault(name, injected, fn))
        return fn

    return register
