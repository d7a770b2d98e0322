"""PostgreSQL failover: the primary lost mid-load, its synchronous standby promoted.

The service's DATABASE_URL names both hosts from the start (``multi_host_url``:
``host1,host2`` with ``target_session_attrs=read-write``), as an RDS Proxy
endpoint or an Aurora cluster endpoint names "whichever instance is the
writer".  The fault builds the standby while the load runs (``pg_basebackup``
of the primary, streaming replication), makes it synchronous
(``synchronous_standby_names``: a commit is acknowledged only once the standby
has flushed it), stops the primary with ``-m immediate`` (a crash: no
shutdown checkpoint, no goodbye to clients) and promotes the standby.  Nothing
in the service is restarted or re-pointed: its pools, the search sync and the
real-time process reconnect, and libpq skips the dead host and the read-only
one.  ``Campaign.verify`` then checks every acknowledged write on the promoted
standby.

The notes give the error window: from the primary's stop to the first write
acknowledged by the new primary (promotion included; a real deployment adds
the time to detect the loss, which RDS does for Aurora).
"""

from __future__ import annotations

import time

from tests.faults.load import MixedLoad
from tests.faults.processes import PROGRESS, _grows
from tests.faults.registry import Notes, fault
from tests.faults.servers import PrivatePostgres
from tests.faults.stack import Campaign
from tests.polling import poll

STANDBY = "standby1"  # its application_name, as synchronous_standby_names lists it


def _sync_state(campaign: Campaign) -> str | None:
    with campaign.admin() as conn:
        row = conn.execute(
            "SELECT sync_state FROM pg_stat_replication WHERE application_name = %s", (STANDBY,)
        ).fetchone()
    return None if row is None else str(row["sync_state"])


@fault(
    "failover: sync standby promoted",
    "a synchronous standby (pg_basebackup, streaming) joins mid-load; the primary is stopped "
    "-m immediate and the standby promoted",
)
def postgres_failover(campaign: Campaign, load: MixedLoad) -> Notes:
    standby = PrivatePostgres.standby_of(campaign.pg, STANDBY, port=campaign.standby_port)
    campaign.on_stop(standby.destroy)
    standby.start()
    with campaign.admin() as conn:
        conn.execute(f"ALTER SYSTEM SET synchronous_standby_names = '{STANDBY}'")
        conn.execute("SELECT pg_reload_conf()")
    assert poll(lambda: _sync_state(campaign), lambda s: s == "sync", timeout_s=30) == "sync", (
        "the standby streams and is synchronous"
    )
    assert _grows(load, acked=PROGRESS // 2), "writes are acknowledged under synchronous commit"

    failures_before = len(load.failed_at)
    stopped = time.monotonic()
    campaign.pg.stop("immediate")
    standby.promote()
    promoted = time.monotonic()
    campaign.pg = standby  # the checks read the new primary
    first = poll(lambda: load.first_ack_after(promoted), lambda t: t is not None, timeout_s=60)
    assert first is not None, "the promoted standby acknowledges writes"
    failures = load.failed_at[failures_before:]
    return {
        "promote s": round(promoted - stopped, 2),
        "error window s": round(first - stopped, 2),
        "5xx": len(failures),
    }
