"""Feature flags: the registry of every flag the code asks about (docs/feature-flags.md).

A flag switches something the team may want to turn on or off without a deploy,
per org or per user (the rules live in the flag store: AWS AppConfig, or a JSON
file locally).  Each flag has a ``default``: the answer when the store has no such
flag, or cannot be read (AppConfig down, a bad document), so a store outage never
fails a request, and a new risky feature stays off unless the store says
otherwise.  Each flag has an owner and a date by which it goes (a flag is
temporary: once the feature is settled, its code path stays and the flag is
removed); tests/unit/test_feature_flags_docs.py keeps this table, the docs and
the code in step.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from chalicelib.domain.errors import FeatureDisabled
from chalicelib.domain.ports.flags import FeatureFlags


@dataclass(frozen=True)
class Flag:
    name: str
    default: bool  # when the store lacks the flag or cannot be read
    owner: str
    remove_by: date
    description: str


REALTIME = "realtime"
WEBHOOKS = "webhooks"
SHARE_NOTIFICATIONS = "share_notifications"

FLAGS: dict[str, Flag] = {
    flag.name: flag
    for flag in (
        # a kill switch for what already ships: on unless the store says off
        Flag(
            REALTIME,
            default=True,
            owner="realtime team",
            remove_by=date(2027, 6, 30),
            description="WebSocket connections and event streams (feed=eventsource)",
        ),
        # new features: off unless the store turns them on (on in the local file)
        Flag(
            WEBHOOKS,
            default=False,
            owner="integrations team",
            remove_by=date(2027, 6, 30),
            description="outgoing webhook deliveries of document changes",
        ),
        Flag(
            SHARE_NOTIFICATIONS,
            default=False,
            owner="collaboration team",
            remove_by=date(2027, 6, 30),
            description="notifying a user when a document is shared with them",
        ),
    )
}


def default_of(name: str) -> bool:
    """The registry's default; an unregistered name is a programming error."""
    try:
        return FLAGS[name].default
    except KeyError:
        raise KeyError(f"unknown feature flag {name!r}: add it to domain/flags.py") from None


def require(flags: FeatureFlags, name: str, *, org: str, user: str | None = None) -> None:
    """``FeatureDisabled`` (403 ``feature-disabled``) unless ``name`` is on for the caller."""
    if not flags.enabled(name, org=org, user=user):
        raise FeatureDisabled(name)
