"""The local stack runs personal-data exports by itself (devtools/export_worker.py),
black-box: POST /me/export, the status turns ready, the presigned URL downloads
the caller's archive."""

from __future__ import annotations

import json
import urllib.request
import uuid

import pytest

from tests.conftest import make_token
from tests.e2e.conftest import Client
from tests.polling import poll

pytestmark = pytest.mark.e2e


def test_a_local_export_becomes_ready_and_downloads(server: str) -> None:
    org = f"e2e-export-{uuid.uuid4().hex[:6]}"
    me = Client(server, make_token(org=org, sub="erin"))
    doc = me.request("POST", "/documents", {"title": "mine"}).json()
    started = me.request("POST", "/me/export")
    assert started.status == 202, started.body
    location = started.headers["location"]
    status = poll(
        lambda: me.request("GET", location).json(),
        lambda s: s["state"] != "pending",
        timeout_s=60,
        interval_s=0.2,
    )
    assert status["state"] == "ready", status
    with urllib.request.urlopen(status["url"], timeout=30) as resp:  # the local moto server
        archive = json.loads(resp.read())
    assert archive["subject"] == "erin" and archive["org"] == org
    assert [d["id"] for d in archive["documents"]] == [doc["id"]]
    other = Client(server, make_token(org=org, sub="frank"))
    assert other.request("GET", location).status == 404
