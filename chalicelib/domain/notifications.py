"""Share notifications: who is told that a document was shared, and what they read.
Pure (docs/compliance.md, "Share notifications").

A grant that gives a user access (a new grant, or ``reader`` raised to ``writer``)
is a ``ShareEvent``; the consumer (service_layer/notifications.py) mails the
grantee when they consent to ``notifications``, have not unsubscribed and gave an
address.  The message names the sharer and the document's id, never its content:
no title, no body, no tags, no metadata (``share_message``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from chalicelib.domain.errors import ValidationFailed
from chalicelib.domain.keys import join_key

# the consent purpose share e-mails need (ConsentService.granted)
PURPOSE = "notifications"
EMAIL_MAX = 254  # RFC 5321's path limit
# one address, no display name, no folding: local@domain with a dot in the domain
_EMAIL = re.compile(r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]{1,64}@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+$")


@dataclass(frozen=True)
class ShareEvent:
    """A grant change, as the outbox row of its new version and its audit row tell it."""

    org: str
    doc_id: str
    version: int
    grantee: str
    actor: str
    role: str
    previous_role: str | None

    @property
    def gives_access(self) -> bool:
        """A new grant, or a raise; a lowered or unchanged role tells nobody anything."""
        if self.grantee == self.actor:
            return False
        return self.previous_role is None or (
            self.previous_role == "reader" and self.role == "writer"
        )


@dataclass(frozen=True)
class Contact:
    """A user's stored notification settings (``email`` still sealed)."""

    email: dict[str, Any] | None
    shares: bool
    updated_at: datetime | None = None


@dataclass(frozen=True)
class Message:
    to: str
    subject: str
    text: str


def email_context(org: str, user: str) -> str:
    """The associated data of a user's sealed address: it opens for that user only."""
    return join_key("docs-notify-email-v1", org, user)


def share_message(event: ShareEvent, to: str, link_base: str) -> Message:
    """The e-mail: the sharer, the access given and a link by id; nothing of the document."""
    link = f"{link_base.rstrip('/')}/documents/{event.doc_id}"
    access = "edit" if event.role == "writer" else "read"
    text = (
        f"{event.actor} shared a document with you: you can now {access} it.\n\n"
        f"Open it: {link}\n\n"
        "You get this e-mail because you asked for share notifications. To stop them, "
        'send PUT /me/notification-settings with {"shares": false}, or withdraw your '
        "consent to notifications (PUT /me/consents).\n"
    )
    return Message(to, "A document was shared with you", text)


def parse_settings(body: Any) -> dict[str, Any]:
    """The body of ``PUT /me/notification-settings``: ``{"email": str | null,
    "shares": bool}``, either or both; what to change."""
    if not isinstance(body, dict) or not body or not set(body) <= {"email", "shares"}:
        raise ValidationFailed(
            'The body must be an object with "email" (an address or null) and/or '
            '"shares" (true or false), and nothing else.',
            errors=[{"loc": ["body"], "msg": "expected {email?, shares?}", "type": "value_error"}],
        )
    out: dict[str, Any] = {}
    if "shares" in body:
        if not isinstance(body["shares"], bool):
            raise ValidationFailed(
                '"shares" must be true or false.',
                errors=[{"loc": ["body", "shares"], "msg": "not a boolean", "type": "bool_type"}],
            )
        out["shares"] = body["shares"]
    if "email" in body:
        email = body["email"]
        if email is not None and (
            not isinstance(email, str) or len(email) > EMAIL_MAX or not _EMAIL.fullmatch(email)
        ):
            raise ValidationFailed(
                '"email" must be one e-mail address (local@domain) or null.',
                errors=[{"loc": ["body", "email"], "msg": "not an address", "type": "value_error"}],
            )
        out["email"] = email
    return out


class MailRejected(Exception):
    """The mail service refused this message for good (a bad address, say): it is
    counted and skipped, never retried.  Anything transient is a
    ``DependencyUnavailable``, and the consumer tries again from that row."""
