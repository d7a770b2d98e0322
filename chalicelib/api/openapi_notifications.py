"""The OpenAPI models of ``/me/notification-settings`` (openapi.py lists them)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class NotificationSettingsIn(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"minProperties": 1})

    email: str | None = Field(
        default=None,
        description="where share e-mails go (one address, stored encrypted); null removes it",
        max_length=254,
    )
    shares: bool | None = Field(
        default=None, description="false unsubscribes from share e-mails; true resubscribes"
    )


class NotificationSettingsOut(BaseModel):
    email: str | None = Field(description="the address, or null: no share e-mails")
    shares: bool = Field(description="whether share e-mails are wanted (the default: true)")
    updated_at: str | None = Field(description="null: never set")


MODELS: list[type[BaseModel]] = [NotificationSettingsIn, NotificationSettingsOut]
