"""The local stack's content pipeline, black-box: PUT to the presigned URL (as
``curl -T`` would), the moto notification reaches the processor, content is ready."""

from __future__ import annotations

import hashlib
import urllib.error
import urllib.request

import pytest

from tests.conftest import make_token
from tests.e2e.conftest import Client
from tests.polling import poll

pytestmark = pytest.mark.e2e


def test_presigned_upload_becomes_ready_and_downloads(server: str) -> None:
    client = Client(server, make_token(org="e2e-content"))
    doc = client.request("POST", "/documents", {"title": "big one"}).json()
    data = b"A long report about the quarterly plan.\n" * 5000
    ticket = client.request(
        "POST",
        f"/documents/{doc['id']}/content",
        {"content_type": "text/plain", "sha256": hashlib.sha256(data).hexdigest()},
    )
    assert ticket.status == 200, ticket.body
    t = ticket.json()
    put = urllib.request.Request(t["upload_url"], data=data, method="PUT", headers=t["headers"])
    with urllib.request.urlopen(put, timeout=30) as resp:
        assert resp.status == 200
    content = poll(
        lambda: client.request("GET", f"/documents/{doc['id']}").json()["content"],
        lambda content: content["status"] != "pending",
        timeout_s=60,
        interval_s=0.2,
    )
    assert content["status"] == "ready", content
    assert content["sha256"] == hashlib.sha256(data).hexdigest()

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args, **kwargs):  # type: ignore[no-untyped-def]
            return None

    opener = urllib.request.build_opener(NoRedirect)
    req = urllib.request.Request(
        f"{server}/documents/{doc['id']}/content",
        headers={"Authorization": f"Bearer {client.token}"},
    )
    with pytest.raises(urllib.error.HTTPError) as redirect:
        opener.open(req, timeout=30)
    assert redirect.value.code == 302
    location = redirect.value.headers["Location"]
    with urllib.request.urlopen(location, timeout=30) as resp:
        assert resp.read() == data
