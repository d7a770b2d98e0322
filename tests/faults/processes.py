"""Faults that kill a process of the stack mid-load and bring it back.

Each waits for the load to make progress while the process is down (the fault
is *during* load, not between loads), then restarts it the way its home would:
Redis and the search server come back empty on the same port, PostgreSQL comes
back with its data after an immediate (crash) stop, a killed sync consumer is
replaced by a new process (the next invocation of its function).
"""

from __future__ import annotations

from tests.e2e.conftest import Client
from tests.faults.load import MixedLoad
from tests.faults.registry import Notes, fault
from tests.faults.stack import Campaign
from tests.polling import poll

PROGRESS = 25  # acknowledged writes (or operations) the load makes while a process is down


def _grows(load: MixedLoad, *, acked: int = 0, ops: int = 0, timeout_s: float = 60.0) -> bool:
    start_acked, start_ops = load.acked_writes, load.ops
    return poll(
        lambda: load.acked_writes - start_acked >= acked and load.ops - start_ops >= ops,
        timeout_s=timeout_s,
    )


def _health(campaign: Campaign) -> dict[str, str]:
    checks: dict[str, str] = Client(campaign.server.base).request("GET", "/health").json()["checks"]
    return checks


@fault("redis: kill -9, restart empty", "SIGKILL the private Redis mid-load; restart it empty")
def redis_killed(campaign: Campaign, load: MixedLoad) -> Notes:
    campaign.redis.kill()
    assert _grows(load, acked=PROGRESS, ops=3 * PROGRESS), "reads and writes go on without Redis"
    degraded = _health(campaign)["redis"]
    assert degraded == "degraded", f"/health says redis {degraded!r} while it is down"
    campaign.redis.start()
    assert poll(lambda: all(_health(campaign)["redis"] == "ok" for _ in range(6)), timeout_s=30), (
        "every worker's breaker closed by itself"
    )
    return {"health while down": f"redis {degraded}"}


@fault("postgres: crash stop, restart", "pg_ctl stop -m immediate mid-load; start it on its data")
def postgres_crashed(campaign: Campaign, load: MixedLoad) -> Notes:
    before = load.statuses[503]
    campaign.pg.stop("immediate")
    assert poll(lambda: load.statuses[503] - before >= 3, timeout_s=30), "clients saw the outage"
    down = Client(campaign.server.base).request("GET", "/health")
    assert down.status == 503 and down.json()["checks"]["postgres"] == "down", down
    campaign.pg.start()  # same port, same data; the server is not restarted
    return {"503 during outage": load.statuses[503] - before}


@fault("search: kill -9, restart empty", "SIGKILL the search server mid-load; restart it empty")
def search_killed(campaign: Campaign, load: MixedLoad) -> Notes:
    campaign.search.kill()
    assert _grows(load, acked=PROGRESS), "writes go on without the search backend"
    pending = campaign.pending_outbox()
    assert pending > 0, "the outbox keeps what the index has not seen"
    campaign.search.start()  # empty: the sync rebuilds the index from PostgreSQL
    return {"outbox rows waiting": pending}


@fault(
    "search sync: kill -9 the consumer", "SIGKILL every outbox consumer mid-load; start a new one"
)
def sync_killed(campaign: Campaign, load: MixedLoad) -> Notes:
    killed = campaign.kill_consumers()
    assert _grows(load, acked=PROGRESS), "writes go on without a consumer"
    pending = campaign.pending_outbox()
    assert pending > 0, "the rows wait for the next consumer"
    campaign.start_sync()
    return {"consumers killed": len(set(killed)), "outbox rows waiting": pending}
