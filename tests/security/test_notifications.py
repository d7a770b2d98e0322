"""Share notifications stay in their org and their user (docs/compliance.md, "Share
notifications"; docs/security.md): an address is read and used only for the user of
the org that gave it; a grant in one org never mails a same-named user of another;
an address cannot smuggle a second recipient or header.

Real PostgreSQL and Redis through the real handler, SES on a private moto server.
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto.ses.models import ses_backends

from chalicelib.service_layer.notifications import NotifyReport
from tests.conftest import Invoker, admin_sql, fresh_container, make_token
from tests.polling import poll

pytestmark = pytest.mark.integration
DEFAULT_ACCOUNT_ID = "123456789012"  # moto's account
SENDER = "notify-security@docs.example"
KEYS = "k1:" + base64.b64encode(b"s" * 32).decode()


@pytest.fixture
def stack(settings: Any, moto_endpoint: str) -> Iterator[Any]:
    ses = boto3.client("sesv2", endpoint_url=moto_endpoint, region_name="us-east-1")
    ses.create_email_identity(EmailIdentity=SENDER)
    with fresh_container(
        settings, aws_endpoint_url=moto_endpoint, aws_region="us-east-1", notify_sender=SENDER,
        pii_local_keys=KEYS,
    ) as built:  # fmt: skip
        built.share_notifier.run_batch()
        yield built


def _api(org: str, sub: str, *roles: str) -> Invoker:
    return Invoker(make_token(org=org, sub=sub, roles=roles or ("writer",)))


def _mails(to: str) -> list[Any]:
    sent = ses_backends[DEFAULT_ACCOUNT_ID]["us-east-1"].sent_messages
    return [m for m in sent if to in m.destinations.get("ToAddresses", [])]


def test_a_grant_in_another_org_never_uses_this_orgs_address(stack: Any) -> None:
    a, b = f"a-{uuid.uuid4().hex[:6]}", f"b-{uuid.uuid4().hex[:6]}"
    to = f"bob-{uuid.uuid4().hex[:6]}@example.com"
    bob_a = _api(a, "bob", "reader")
    assert bob_a("PUT", "/me/consents", {"consents": {"notifications": True}}).status == 200
    assert bob_a("PUT", "/me/notification-settings", {"email": to}).status == 200
    # the same user id in org B: nothing of org A's settings shows, nothing is sent there
    assert _api(b, "bob", "reader")("GET", "/me/notification-settings").json()["email"] is None
    doc = _api(b, "mallory")("POST", "/documents", {"title": "t", "visibility": "private"})
    assert doc.status == 201, doc
    grant = _api(b, "mallory")(
        "PUT", f"/documents/{doc.json()['id']}/grants/bob", {"role": "reader"}
    )
    assert grant.status in (200, 201), grant
    total = NotifyReport()

    def step() -> NotifyReport:
        total.add(stack.share_notifier.drain())
        return total

    report = poll(step, lambda r: r.events >= 1)
    assert report.events == 1 and report.no_consent == 1 and report.sent == 0, report
    assert _mails(to) == []
    # an address sealed for org A's bob does not open as org B's bob, even copied over
    admin_sql(stack.settings.database_url,
              "INSERT INTO notification_settings (org, user_id, email, shares) "
              "SELECT %s, user_id, email, shares FROM notification_settings "
              "WHERE org = %s AND user_id = 'bob'", b, a)  # fmt: skip
    assert _api(b, "bob", "reader")("GET", "/me/notification-settings").status == 503


@pytest.mark.parametrize(
    "email",
    [
        "bob@example.com\nBcc: eve@evil.example",
        "bob@example.com\r\n",
        "bob@example.com\n",  # a regex's `$` accepts a final newline: fullmatch does not
        "bob@example.com, eve@evil.example",
        "Bob <bob@example.com>",
        "bob@localhost",
        "x" * 250 + "@example.com",
    ],
)
def test_an_address_cannot_carry_headers_or_more_recipients(stack: Any, email: str) -> None:
    r = _api("c-org", "bob", "reader")("PUT", "/me/notification-settings", {"email": email})
    assert r.status == 422, r
    assert r.json()["errors"][0]["loc"] == ["body", "email"]
