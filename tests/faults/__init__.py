"""The fault campaign (``test_campaign.py``) and the private servers it and the
e2e fault tests kill and restart (``servers.py``; re-exported here, where they
lived as ``tests/faults.py`` before the campaign)."""

from tests.faults.servers import PrivatePostgres, PrivateRedis, PrivateSearch

__all__ = ["PrivatePostgres", "PrivateRedis", "PrivateSearch"]
