"""Feature flags: is a feature on for this org (and user)?

The adapter (adapters/feature_flags.py) evaluates Powertools feature flags from
AWS AppConfig or a local JSON file, cached; it never raises: when the store
cannot be read, each flag answers its registry default (domain/flags.py).
"""

from __future__ import annotations

from typing import Protocol


class FeatureFlags(Protocol):
    def enabled(self, name: str, *, org: str, user: str | None = None) -> bool:
        """Whether flag ``name`` is on for ``user`` of ``org`` (``org`` from the
        verified token); ``name`` must be in ``domain.flags.FLAGS``."""
        ...
