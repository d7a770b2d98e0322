"""Amazon SES (API v2) as the ``Mailer`` of share notifications.

One client per process, made on first send (``LazyClient``: boto3 stays off the
cold start).  Locally ``DOCS_AWS_ENDPOINT_URL`` points it at the moto server,
where the sender identity is verified when the local stack starts.

Vendor errors are mapped here, once: a refusal of this message (a bad address, an
unverified identity in the sandbox, a suppressed recipient) is ``MailRejected``,
skipped for good; anything else (throttling, the service or the network) is
``DependencyUnavailable``, and the consumer tries the same row again later.
"""

from __future__ import annotations

from typing import Any

from chalicelib.aws_client import LazyClient
from chalicelib.domain.errors import DependencyUnavailable
from chalicelib.domain.notifications import MailRejected, Message
from chalicelib.observability import subsegment

# SES v2 error codes that no retry can fix
_REJECTED = {
    "MessageRejected",
    "MailFromDomainNotVerifiedException",
    "BadRequestException",
    "NotFoundException",
    "AccountSuspendedException",
    "SendingPausedException",
}


class SesMailer:
    """Implements ``Mailer``: ``SendEmail`` from one verified identity."""

    def __init__(
        self,
        sender: str,
        region: str,
        endpoint_url: str | None = None,
        *,
        client: Any = None,
    ) -> None:
        self.sender = sender
        self._client = LazyClient(
            "sesv2",
            client=client,
            region_name=region,
            endpoint_url=endpoint_url,
            config={"retries": {"max_attempts": 2, "mode": "standard"},
                    "connect_timeout": 3, "read_timeout": 10},
        )  # fmt: skip

    def send(self, message: Message) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        with subsegment("ses.send_email"):
            try:
                self._client.get().send_email(
                    FromEmailAddress=self.sender,
                    Destination={"ToAddresses": [message.to]},
                    Content={"Simple": {
                        "Subject": {"Data": message.subject, "Charset": "UTF-8"},
                        "Body": {"Text": {"Data": message.text, "Charset": "UTF-8"}},
                    }},
                )  # fmt: skip
            except ClientError as exc:
                code = str(exc.response.get("Error", {}).get("Code", ""))
                if code in _REJECTED:
                    raise MailRejected(code) from None
                raise DependencyUnavailable("The mail service is unavailable.") from exc
            except BotoCoreError as exc:
                raise DependencyUnavailable("The mail service is unreachable.") from exc
