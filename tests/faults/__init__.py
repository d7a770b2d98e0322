"""The fault campaign (``test_campaign.py``) and the private servers it and the
e2e fault tests kill and restart (``servers.py``)."""
