"""``Pace``: a long-running outbox consumer makes at most one pass per interval, and
an idle one is never held back (chalicelib/adapters/postgres/outbox_listener.py)."""

from __future__ import annotations

import itertools

from chalicelib.adapters.postgres.outbox_listener import Pace


class Clock:
    def __init__(self) -> None:
        self.now = 100.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(round(seconds, 6))
        self.now += seconds


def test_the_first_pass_and_an_idle_consumer_go_at_once() -> None:
    clock = Clock()
    pace = Pace(0.05, clock=clock, sleep=clock.sleep)
    assert pace.before_pass() == 0.0
    clock.now += 1.0  # idle for longer than the interval
    assert pace.before_pass() == 0.0
    assert clock.slept == []


def test_a_busy_consumer_waits_out_the_rest_of_the_interval() -> None:
    clock = Clock()
    pace = Pace(0.05, clock=clock, sleep=clock.sleep)
    pace.before_pass()
    clock.now += 0.01  # the pass took 10 ms, and a commit came at once
    assert round(pace.before_pass(), 6) == 0.04
    clock.now += 0.06  # a pass longer than the interval: the next one goes at once
    assert pace.before_pass() == 0.0
    assert clock.slept == [0.04]


def test_passes_never_come_closer_than_the_interval() -> None:
    clock = Clock()
    pace = Pace(0.1, clock=clock, sleep=clock.sleep)
    starts = []
    for _ in range(20):  # a consumer woken again right after each pass
        pace.before_pass()
        starts.append(clock.now)
        clock.now += 0.003
    gaps = [round(b - a, 6) for a, b in itertools.pairwise(starts)]
    assert min(gaps) >= 0.1
