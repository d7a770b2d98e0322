"""Feature flags with Powertools (``utilities.feature_flags``), from AWS AppConfig or a
JSON file (docs/feature-flags.md).

- ``appconfig`` (AWS): Powertools' ``AppConfigStore`` (AppConfig Data:
  StartConfigurationSession, GetLatestConfiguration), which keeps the document
  ``max_age_s`` seconds before asking again; its client has short timeouts.
- ``file`` (the local stack and tests): ``FileStore``, the same document in a JSON
  file, re-read at most every ``max_age_s`` seconds.

Either store sits behind ``LastGood``: when a fetch fails (AppConfig unreachable or
refusing, a missing or malformed file), the flags keep the last document read, or,
before any was, every flag answers its registry default (domain/flags.py); the
store is asked again only ``max_age_s`` later, so an outage costs one failed fetch
per process per ``max_age_s``, never one per request, and never fails a request
(``FeatureFlagsStoreFailed`` counts it, alarmed).

Lambda-grade: the composition root builds this on first use, and the Powertools
package (which imports boto3, ~0.2 s) is imported only then, so functions that
never evaluate a flag do not pay for it at cold start.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from chalicelib.domain.flags import default_of
from chalicelib.observability import count, logger

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.feature_flags import FeatureFlags as Evaluator
    from aws_lambda_powertools.utilities.feature_flags.base import StoreProvider

# the committed local document (the local stack's and the integration tests' flags)
DEFAULT_FILE = Path(__file__).resolve().parents[2] / "config" / "feature-flags.json"
# AppConfig Data calls: a slow or unreachable AppConfig costs a request at most this
FETCH_TIMEOUTS = {
    "connect_timeout": 1,
    "read_timeout": 1,
    "retries": {"total_max_attempts": 1, "mode": "standard"},  # no retry: LastGood retries later
}


class FileStore:
    """A Powertools flag document in a JSON file, cached ``max_age_s`` seconds
    (implements Powertools' ``StoreProvider``)."""

    def __init__(
        self, path: Path, max_age_s: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.path = path
        self.max_age_s = max_age_s
        self.clock = clock
        self._config: dict[str, Any] | None = None
        self._until = 0.0
        self.reads = 0

    @property
    def get_raw_configuration(self) -> dict[str, Any]:
        from aws_lambda_powertools.utilities.feature_flags import ConfigurationStoreError

        self.reads += 1
        try:
            config = json.loads(self.path.read_text())
        except (OSError, ValueError) as exc:
            raise ConfigurationStoreError(f"cannot read {self.path.name}: {exc}") from exc
        if not isinstance(config, dict):
            raise ConfigurationStoreError(f"{self.path.name} is not a JSON object")
        return config

    def get_configuration(self) -> dict[str, Any]:
        now = self.clock()
        if self._config is None or now >= self._until:
            self._config = self.get_raw_configuration
            self._until = now + self.max_age_s
        return self._config  # the same object until it expires: validated once


class LastGood:
    """``inner``'s document; when reading it fails, the last good one (or ``{}``:
    every flag its default) until ``retry_s`` has passed."""

    def __init__(
        self, inner: Any, retry_s: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.inner = inner
        self.retry_s = retry_s
        self.clock = clock
        self._last: dict[str, Any] = {}
        self._retry_at = 0.0

    @property
    def get_raw_configuration(self) -> dict[str, Any]:
        return self.get_configuration()

    def get_configuration(self) -> dict[str, Any]:
        if self.clock() < self._retry_at:
            return self._last
        try:
            config = self.inner.get_configuration()
            if not isinstance(config, dict):
                raise TypeError("the flag document is not a JSON object")
        except Exception as exc:  # any failure: defaults, not a failed request
            self._retry_at = self.clock() + self.retry_s
            count("FeatureFlagsStoreFailed")
            logger.warning("feature flags: store failed, keeping the last document",
                           error=f"{type(exc).__name__}: {str(exc)[:200]}")  # fmt: skip
            return self._last
        self._last = config
        return config


class PowertoolsFlags:
    """The ``FeatureFlags`` port: Powertools' rule evaluation over a store made on
    first use; the context is ``{"org": ..., "user": ...}`` (docs/feature-flags.md)."""

    def __init__(self, make_store: Callable[[], Any], *, retry_s: float) -> None:
        self.make_store = make_store
        self.retry_s = retry_s
        self._evaluator: Evaluator | None = None
        self._lock = threading.Lock()

    def _flags(self) -> Evaluator:
        if self._evaluator is None:
            with self._lock:
                if self._evaluator is None:
                    from aws_lambda_powertools.utilities.feature_flags import FeatureFlags

                    store: StoreProvider = LastGood(self.make_store(), self.retry_s)  # type: ignore[assignment]
                    self._evaluator = FeatureFlags(store=store)
        return self._evaluator

    def enabled(self, name: str, *, org: str, user: str | None = None) -> bool:
        default = default_of(name)
        context = {"org": org, "user": user or ""}
        try:
            value = self._flags().evaluate(name=name, context=context, default=default)
        except Exception as exc:  # a malformed document: the default
            count("FeatureFlagsStoreFailed")
            logger.warning("feature flags: cannot evaluate", flag=name,
                           error=f"{type(exc).__name__}: {str(exc)[:200]}")  # fmt: skip
            return default
        return value if isinstance(value, bool) else default


def build_flags(store: str, source: str, max_age_s: float) -> PowertoolsFlags:
    """``store`` is ``file`` (``source``: a path, or empty for the committed
    config/feature-flags.json) or ``appconfig`` (``source``:
    ``application/environment/profile``)."""
    if store == "file":
        path = Path(source) if source else DEFAULT_FILE
        return PowertoolsFlags(lambda: FileStore(path, max_age_s), retry_s=max_age_s)
    application, environment, profile = source.split("/")

    def appconfig() -> Any:
        from aws_lambda_powertools.utilities.feature_flags import AppConfigStore
        from botocore.config import Config

        return AppConfigStore(
            environment=environment,
            application=application,
            name=profile,
            max_age=max(1, int(max_age_s)),
            sdk_config=Config(**FETCH_TIMEOUTS),  # type: ignore[arg-type]
        )

    return PowertoolsFlags(appconfig, retry_s=max_age_s)
