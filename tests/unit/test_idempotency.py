"""Idempotency-Key handling (Powertools on Redis, the records port while Redis is out)
against in-memory fakes: no Redis server, no database."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

from chalicelib.adapters.idempotency import Idempotency
from chalicelib.adapters.redis.breaker import CircuitBreaker
from chalicelib.domain.errors import BadRequest, ValidationFailed
from tests.unit.fakes import FakeIdempotencyRecords, FakeRedis


@dataclass
class FakeRedisLink:
    """What the idempotency adapter shares with the cache: a client and its breaker."""

    client: FakeRedis = field(default_factory=FakeRedis)
    breaker: CircuitBreaker = field(default_factory=lambda: CircuitBreaker(1, 60.0))
    enabled: bool = True


class InvocationContext:
    """A Lambda context: in-progress records expire with the invocation."""

    def get_remaining_time_in_millis(self) -> int:
        return 30_000


class World:
    def __init__(self) -> None:
        self.records = FakeIdempotencyRecords()
        self.redis = FakeRedisLink()
        self.idempotency = Idempotency(self.records, self.redis, "t:")  # type: ignore[arg-type]
        self.calls = 0

    def create(self, *, org: str = "acme", key: str = "k1", body: Any = None) -> dict[str, Any]:
        def action() -> dict[str, Any]:
            self.calls += 1
            return {"status": 201, "headers": {"ETag": f'"{self.calls}"'}, "body": "{}"}

        return self.idempotency.run(
            org=org, sub="alice", route="POST /documents", key=key,
            body=body if body is not None else {"title": "x"}, action=action,
            context=InvocationContext(),
        )  # fmt: skip


@pytest.fixture
def world() -> World:
    return World()


def test_a_retry_gets_the_first_response_and_the_action_runs_once(world: World) -> None:
    first = world.create()
    again = world.create()
    assert world.calls == 1
    assert again["headers"] == {**first["headers"], "Idempotent-Replayed": "true"}
    assert world.records.records == {}, "with Redis up, nothing goes to the database"


def test_the_same_key_with_another_body_is_refused(world: World) -> None:
    world.create(body={"title": "x"})
    with pytest.raises(ValidationFailed, match="different request body"):
        world.create(body={"title": "y"})


def test_keys_are_scoped_to_the_org(world: World) -> None:
    world.create(org="acme")
    world.create(org="evil")
    assert world.calls == 2


def test_while_redis_is_out_records_live_in_the_orgs_records(world: World) -> None:
    world.redis.client.reachable = False
    first = world.create()
    assert world.redis.breaker.state == "open"
    assert [org for org, _ in world.records.records] == ["acme"]
    assert world.create()["headers"]["Idempotent-Replayed"] == "true" and world.calls == 1
    # Redis is back (its store never saw the key): the record written meanwhile still counts
    world.redis.client.reachable = True
    world.redis.breaker.success()
    again = world.create()
    assert world.calls == 1 and again["headers"]["ETag"] == first["headers"]["ETag"]


def test_a_malformed_key_is_a_bad_request(world: World) -> None:
    for key in ("", "x" * 256, "tab\there"):
        with pytest.raises(BadRequest):
            world.create(key=key)
    assert world.calls == 0
