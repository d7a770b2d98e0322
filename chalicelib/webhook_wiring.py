"""The webhook members of the composition root (docs/webhooks.md): ``WebhookMembers``,
a base of ``bootstrap.Container`` (kept here so ``bootstrap.py`` stays within its
size).  Its adapters and services are imported on first use, not at cold start."""

from __future__ import annotations

from collections.abc import Callable
from functools import cached_property
from typing import TYPE_CHECKING

from chalicelib.config import Settings
from chalicelib.domain.flags import WEBHOOKS

if TYPE_CHECKING:
    from chalicelib.adapters.postgres.protocols import Database
    from chalicelib.adapters.webhook_secrets import SecretBox
    from chalicelib.domain.ports.flags import FeatureFlags
    from chalicelib.domain.ports.webhooks import Sender
    from chalicelib.service_layer.webhooks import Deliverer, WebhookService


class WebhookMembers:
    """``container.webhooks`` (the API's use cases) and ``container.deliverer(sender)``."""

    settings: Settings
    _postgres: Database

    @property
    def flags(self) -> FeatureFlags:  # the container's (bootstrap.Container.flags)
        raise NotImplementedError

    @cached_property
    def webhooks(self) -> WebhookService:
        return webhook_service(self._postgres, self.settings)

    def deliverer(self, sender: Sender) -> Deliverer:
        """The deliverer sending with ``sender`` (the caller names it, so only the
        deliverer's own entry points reach out to receivers)."""
        switched_on = lambda org: self.flags.enabled(WEBHOOKS, org=org)  # noqa: E731
        return deliverer(self._postgres, self.settings, sender, switched_on)


def secret_box(settings: Settings) -> SecretBox:
    """Seals endpoint secrets: ``DOCS_WEBHOOKS_SECRET_KEY``, else the page token secret."""
    from chalicelib.adapters.webhook_secrets import SecretBox

    return SecretBox(settings.webhooks_secret_key or settings.page_token_secret)


def webhook_service(postgres: Database, settings: Settings) -> WebhookService:
    from chalicelib.adapters.postgres.webhooks import PostgresWebhooks
    from chalicelib.service_layer.webhooks import WebhookService

    return WebhookService(PostgresWebhooks(postgres), secret_box(settings), settings.webhooks)


def deliverer(
    postgres: Database,
    settings: Settings,
    sender: Sender,
    switched_on: Callable[[str], bool] = lambda org: True,
) -> Deliverer:
    from chalicelib.adapters.postgres.webhooks import PostgresWebhooks
    from chalicelib.service_layer.webhooks import Deliverer

    return Deliverer(
        PostgresWebhooks(postgres), secret_box(settings), sender, settings.webhooks,
        switched_on=switched_on,
    )  # fmt: skip
