"""Share notifications end to end: grants through the API on real PostgreSQL and Redis,
the consumer on its own outbox cursor, e-mails through SES on a moto server (whose
sent messages the test reads back)."""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto.ses.models import ses_backends

from chalicelib.adapters.ses import SesMailer
from chalicelib.service_layer.notifications import NotifyReport, ShareNotifier
from tests.conftest import Invoker, admin_sql, fresh_container, make_token
from tests.polling import poll

pytestmark = pytest.mark.integration
DEFAULT_ACCOUNT_ID = "123456789012"  # moto's account
SENDER = "notifications@docs.example"
KEYS = "k1:" + base64.b64encode(b"n" * 32).decode()
TITLE, SECRET = "Merger plan for Q3", "the confidential body text"


@pytest.fixture
def stack(settings: Any, moto_endpoint: str) -> Iterator[Any]:
    """A container on a database of its own (the outbox is one stream), SES on moto
    with the sender identity verified, and the consumer's cursor started."""
    ses = boto3.client("sesv2", endpoint_url=moto_endpoint, region_name="us-east-1")
    ses.create_email_identity(EmailIdentity=SENDER)
    with fresh_container(
        settings, aws_endpoint_url=moto_endpoint, aws_region="us-east-1", notify_sender=SENDER,
        pii_local_keys=KEYS, notify_link_base="https://app.example/",
    ) as built:  # fmt: skip
        built.share_notifier.run_batch()  # the cursor starts at the current position
        built.org = f"org-{uuid.uuid4().hex[:8]}"
        built.moto = moto_endpoint
        yield built


def _api(c: Any, sub: str, *roles: str) -> Invoker:
    return Invoker(make_token(org=c.org, sub=sub, roles=roles or ("writer",)))


def _mails(to: str) -> list[Any]:
    sent = ses_backends[DEFAULT_ACCOUNT_ID]["us-east-1"].sent_messages
    return [m for m in sent if to in m.destinations.get("ToAddresses", [])]


def _subscriber(c: Any, user: str, *, consent: bool = True) -> str:
    """``user`` consents (or not), and gives an address; the address."""
    api = _api(c, user, "reader")
    email = f"{user}-{uuid.uuid4().hex[:6]}@example.com"
    assert api("PUT", "/me/consents", {"consents": {"notifications": consent}}).status == 200
    r = api("PUT", "/me/notification-settings", {"email": email})
    assert r.status == 200, r
    assert r.json()["email"] == email and r.json()["shares"] is True
    return email


def _drain(notifier: ShareNotifier, events: int = 1, *, failed: int = 0) -> NotifyReport:
    """Drain until ``events`` grant changes (or ``failed`` failures) were seen: a row
    is handed out once every older transaction of the server has finished."""
    total = NotifyReport()

    def step() -> NotifyReport:
        total.add(notifier.drain())
        return total

    if failed:
        return poll(step, lambda r: r.failed >= failed)
    return poll(step, lambda r: r.events >= events)


def _private_doc(c: Any) -> str:
    r = _api(c, "alice")(
        "POST", "/documents", {"title": TITLE, "body": {"text": SECRET}, "visibility": "private"}
    )
    assert r.status == 201, r
    return str(r.json()["id"])


def _grant(c: Any, doc: str, user: str, role: str = "reader") -> None:
    r = _api(c, "alice")("PUT", f"/documents/{doc}/grants/{user}", {"role": role})
    assert r.status in (200, 201), r


def test_a_grant_mails_the_grantee_once_an_hour_without_the_documents_content(stack: Any) -> None:
    to = _subscriber(stack, "bob")
    doc = _private_doc(stack)
    _grant(stack, doc, "bob")
    report = _drain(stack.share_notifier)
    assert report.sent == 1, report
    [mail] = _mails(to)
    assert mail.source == SENDER
    assert f"https://app.example/documents/{doc}" in mail.body and "alice" in mail.body
    for content in (TITLE, "Merger", SECRET, "confidential"):
        assert content not in mail.body and content not in mail.subject
    # within the hour: a raise, a revoke and a new grant of the same document send nothing
    _grant(stack, doc, "bob", "writer")
    assert _api(stack, "alice")("DELETE", f"/documents/{doc}/grants/bob").status in (200, 204)
    _grant(stack, doc, "bob")
    report = _drain(stack.share_notifier, 2)
    assert report.rows == 3 and report.throttled == 2 and report.sent == 0, report
    assert len(_mails(to)) == 1
    # another document is another e-mail
    other = _private_doc(stack)
    _grant(stack, other, "bob")
    assert _drain(stack.share_notifier).sent == 1
    assert len(_mails(to)) == 2


def test_without_consent_or_after_its_withdrawal_no_mail(stack: Any) -> None:
    never = _subscriber(stack, "carol", consent=False)
    to = _subscriber(stack, "dave")
    assert (
        _api(stack, "dave", "reader")(
            "PUT", "/me/consents", {"consents": {"notifications": False}}
        ).status
        == 200
    )
    doc = _private_doc(stack)
    _grant(stack, doc, "carol")
    _grant(stack, doc, "dave")
    report = _drain(stack.share_notifier, 2)
    assert report.events == 2 and report.no_consent == 2 and report.sent == 0, report
    assert _mails(never) == [] and _mails(to) == []


def test_an_unsubscribed_user_gets_no_mail(stack: Any) -> None:
    to = _subscriber(stack, "erin")
    r = _api(stack, "erin", "reader")("PUT", "/me/notification-settings", {"shares": False})
    assert r.status == 200 and r.json() == {**r.json(), "email": to, "shares": False}
    _grant(stack, _private_doc(stack), "erin")
    report = _drain(stack.share_notifier)
    assert report.unsubscribed == 1 and report.sent == 0, report
    assert _mails(to) == []


def test_an_ses_failure_is_retried_not_lost_and_not_duplicated(stack: Any) -> None:
    to = _subscriber(stack, "frank")
    doc = _private_doc(stack)
    _grant(stack, doc, "frank")
    real = stack.share_notifier
    # SES unreachable (nothing listens on port 9): the row stays, its claim is taken back
    down = ShareNotifier(
        real.stream, SesMailer(SENDER, "us-east-1", "http://127.0.0.1:9"), real.consented,
        real.cipher, window_s=real.window_s,
    )  # fmt: skip
    report = _drain(down, failed=1)
    assert report.failed == 1 and report.sent == 0, report
    assert _mails(to) == []
    assert admin_sql(stack.settings.database_url,
                     "SELECT count(*) AS n FROM notifications_sent WHERE recipient = 'frank'"
                     )[0]["n"] == 0  # fmt: skip
    assert down.drain().failed == 1  # still there on the next run
    assert _drain(real).sent == 1
    assert len(_mails(to)) == 1
    # redelivery: nothing after the cursor, and a replayed cursor finds the claim
    assert real.drain().sent == 0
    admin_sql(stack.settings.database_url,
              "UPDATE realtime_cursors SET txid = '1'::xid8, seq = 0 WHERE name = 'notifications'")  # fmt: skip
    replay = _drain(real)
    assert replay.throttled >= 1 and replay.sent == 0, replay
    assert len(_mails(to)) == 1


def test_export_carries_the_settings_and_erasure_removes_them(stack: Any) -> None:
    to = _subscriber(stack, "gina")
    _grant(stack, _private_doc(stack), "gina")
    assert _drain(stack.share_notifier).sent == 1
    s3 = boto3.client("s3", endpoint_url=stack.moto, region_name="us-east-1")
    s3.create_bucket(Bucket=stack.settings.export_bucket)
    gina = _api(stack, "gina", "reader")
    job = gina("POST", "/me/export").json()["id"]
    stack.personal_data.run_due()
    status = gina("GET", f"/me/export/{job}").json()
    assert status["state"] == "ready", status
    key = f"exports/{stack.org}/{job}.json"
    archive = json.loads(s3.get_object(Bucket=stack.settings.export_bucket, Key=key)["Body"].read())
    assert archive["notification_settings"]["email"] == to
    assert archive["notification_settings"]["shares"] is True

    admin = _api(stack, "root", "admin")
    r = admin("POST", "/users/gina/erasure", {"documents": "delete"})
    assert r.status == 200, r
    for table, column in (
        ("notification_settings", "user_id"),
        ("notifications_sent", "recipient"),
    ):
        rows = admin_sql(stack.settings.database_url,
                         f"SELECT count(*) AS n FROM {table} WHERE org = %s AND {column} = 'gina'",
                         stack.org)  # fmt: skip
        assert rows[0]["n"] == 0, table
    assert gina("GET", "/me/notification-settings").json()["email"] is None


def test_the_address_is_stored_sealed_and_bad_input_is_refused(stack: Any) -> None:
    to = _subscriber(stack, "hal")
    [row] = admin_sql(stack.settings.database_url,
                      "SELECT email::text AS e FROM notification_settings WHERE org = %s "
                      "AND user_id = 'hal'", stack.org)  # fmt: skip
    assert to not in row["e"] and '"$enc"' in row["e"]
    hal = _api(stack, "hal", "reader")
    for body in ({"email": "not an address"}, {"shares": "no"}, {"other": 1}, {}, ["x"]):
        r = hal("PUT", "/me/notification-settings", body)
        assert r.status == 422, (body, r)
    assert hal("GET", "/me/notification-settings").json()["email"] == to  # nothing lost
    r = hal("PUT", "/me/notification-settings", {"email": None})
    assert r.json()["email"] is None and r.json()["shares"] is True
